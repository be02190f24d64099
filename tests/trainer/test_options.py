"""Trainer options: output types, time budget, default names, schedule, checkpoint safety."""

from __future__ import annotations

import math
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer import checkpoint
from trainer.config import Settings, TrainingInputError
from trainer.export import export
from trainer.model import Llama, ModelConfig
from trainer.tokenizer import BPETokenizer
from trainer.train import Result, lr_at, train

from .conftest import tiny_settings


def _state(result: Result) -> tuple[Llama, BPETokenizer]:
    state = checkpoint.load(result.checkpoint_path)
    model = Llama(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    return model.eval(), BPETokenizer.from_json(state["tokenizer"])


@pytest.mark.parametrize("out_type,tolerance", [("f16", 2e-2), ("q8_0", 1e-1)])
def test_out_types_load_in_llama_cpp(trained: Result, tmp_path: Path, out_type: str,
                                     tolerance: float) -> None:
    from llama_cpp import Llama as LlamaCpp

    model, tok = _state(trained)
    path = export(model, tok, tmp_path / f"tiny-{out_type}.gguf", out_type)
    assert path.stat().st_size < 0.6 * trained.model_path.stat().st_size  # smaller than f32
    cpp = LlamaCpp(model_path=str(path), n_ctx=32, logits_all=True, n_threads=2,
                   verbose=False)
    ids = tok.encode("This License applies to any program")
    cpp.eval(ids)
    ours = model(torch.tensor([ids]))[0][0].detach().numpy()
    theirs = np.array(cpp.scores[: len(ids)])
    err = np.abs(ours - theirs).max() / max(1.0, np.abs(ours).max())
    assert 0 < err < tolerance, f"{out_type}: relative logit error {err}"
    # the most likely next token agrees almost everywhere
    assert (ours.argmax(-1) == theirs.argmax(-1)).mean() >= 0.8
    cpp.close()


def test_out_type_flag_reaches_the_file(text_file: Path, tmp_path: Path) -> None:
    import gguf

    result = train(tiny_settings(text_file, tmp_path, iters=3, eval_every=0, predict=0,
                                 out_type="q8_0"))
    reader = gguf.GGUFReader(str(result.model_path))
    kinds = {t.name: t.tensor_type.name for t in reader.tensors}
    assert kinds["blk.0.attn_q.weight"] == "Q8_0" and kinds["output_norm.weight"] == "F32"


def test_max_seconds_default_names_and_schedule(text_file: Path, tmp_path: Path,
                                                monkeypatch) -> None:
    import trainer.train as loop

    seen: list[int] = []

    def recording_lr(step: int, s: Settings) -> float:
        seen.append(step)
        return lr_at(step, s)

    monkeypatch.setattr(loop, "lr_at", recording_lr)
    started = time.monotonic()
    result = train(tiny_settings(text_file, tmp_path, iters=1_000_000, eval_every=0,
                                 predict=0, max_seconds=3))
    took = time.monotonic() - started
    assert 0 < result.step < 1_000_000 and took < 60, (result.step, took)
    assert sorted(set(seen)) == list(range(result.step)), "the schedule sets every step"
    # default names: tiny-<data file stem> in the models folder, the checkpoint beside it
    models = tmp_path / "models"
    assert result.model_path == models / "tiny-licenses.gguf" and result.model_path.is_file()
    assert result.checkpoint_path == models / "checkpoints" / "tiny-licenses.pt"
    assert checkpoint.load(result.checkpoint_path)["step"] == result.step


def test_learning_rate_at_known_steps() -> None:
    s = Settings(iters=105, lr=1e-3, min_lr_ratio=0.1)  # warm-up: 5% of 105 = 5 steps
    assert s.warmup_steps == 5
    assert lr_at(0, s) == pytest.approx(2e-4)          # 1/5 of the peak
    assert lr_at(4, s) == pytest.approx(1e-3)          # the end of the warm-up: the peak
    assert lr_at(5, s) == pytest.approx(1e-3)          # cosine starts at the peak
    assert lr_at(55, s) == pytest.approx(5.5e-4)       # halfway: (peak + floor) / 2
    assert lr_at(105, s) == pytest.approx(1e-4)        # the floor at the last step
    assert lr_at(80, s) == pytest.approx(1e-4 + 0.5 * 9e-4 * (1 + math.cos(math.pi * 0.75)))
    fixed = Settings(iters=10, warmup=0, lr=1e-3, min_lr_ratio=1.0)
    assert [lr_at(i, fixed) for i in range(10)] == pytest.approx([1e-3] * 10)


class _RunsCode:
    def __reduce__(self):  # noqa: ANN204 - what a malicious checkpoint does on load
        return (os.system, (f"touch {_RunsCode.marker}",))

    marker = ""


def test_checkpoint_with_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    _RunsCode.marker = str(marker)
    bad = tmp_path / "evil.pt"
    torch.save({"model": _RunsCode()}, bad)
    with pytest.raises(TrainingInputError, match="not a trainer checkpoint"):
        checkpoint.load(bad)
    assert not marker.exists(), "loading a checkpoint must never run its code"
    torch.load(bad, weights_only=False)  # the control: a plain unpickle does run it
    assert marker.exists()


def test_checkpoint_iteration_pattern(text_file: Path, tmp_path: Path) -> None:
    pattern = tmp_path / "chk-ITERATION.pt"
    result = train(tiny_settings(text_file, tmp_path, iters=4, eval_every=2, predict=0,
                                 checkpoint_out=pattern))
    assert result.checkpoint_path == tmp_path / "chk-4.pt"
    assert {p.name for p in tmp_path.glob("chk-*.pt")} == {"chk-2.pt", "chk-4.pt",
                                                            "chk-LATEST.pt"}
    assert checkpoint.load(tmp_path / "chk-LATEST.pt")["step"] == 4
