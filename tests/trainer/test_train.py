"""Training end to end: outputs, parity with llama.cpp, resume, bad input."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

from trainer import checkpoint
from trainer.config import Settings, TrainingInputError
from trainer.model import Llama, ModelConfig
from trainer.tokenizer import BPETokenizer
from trainer.train import Result, train

from .conftest import tiny_settings


def test_outputs_beside_the_model(trained: Result) -> None:
    path = trained.model_path
    assert path.is_file() and path.name == "tiny-test.gguf"
    assert not list(path.parent.glob(".*.tmp")), "temp files must be renamed away"
    log = json.loads(path.with_name("tiny-test.train.json").read_text())
    assert log["step"] == 40 and len(log["losses"]) == 40
    assert path.with_name("tiny-test.loss.png").read_bytes()[:4] == b"\x89PNG"
    first, last = trained.losses[0][1], trained.val_losses[-1][1]
    assert last < first - 0.5, "training lowers the loss"
    assert trained.sample


def _load(result: Result) -> tuple[Llama, BPETokenizer]:
    state = checkpoint.load(result.checkpoint_path)
    model = Llama(ModelConfig(**state["model_config"]))
    model.load_state_dict(state["model"])
    return model.eval(), BPETokenizer.from_json(state["tokenizer"])


def test_llama_cpp_matches_pytorch(trained: Result) -> None:
    from llama_cpp import Llama as LlamaCpp

    model, tok = _load(trained)
    cpp = LlamaCpp(model_path=str(trained.model_path), n_ctx=32, logits_all=True,
                   n_threads=2, verbose=False)
    text = "This License applies to any program, café 東京 🙂"
    ids = tok.encode(text)
    assert cpp.tokenize(text.encode(), add_bos=False, special=False) == ids
    assert cpp.detokenize(ids).decode() == text
    cpp.eval(ids)
    ours = model(torch.tensor([ids]))[0][0].detach().numpy()
    theirs = np.array(cpp.scores[: len(ids)])
    assert np.abs(ours - theirs).max() < 1e-3 * max(1.0, np.abs(ours).max())
    # greedy continuation agrees for the first tokens
    start = tok.encode("This License")
    want = model.generate(torch.tensor([start]), 8, temperature=0)[0].tolist()[len(start):]
    cpp.reset()
    got = []
    for token in cpp.generate(start, temp=0, top_k=1):
        got.append(token)
        if len(got) == 8:
            break
    assert got == want
    cpp.close()


def test_ctrl_c_checkpoints_and_resume_continues_exactly(text_file: Path, tmp_path: Path,
                                                          monkeypatch) -> None:
    import trainer.train as loop

    opts = dict(iters=30, eval_every=10, predict=0)
    whole = train(tiny_settings(text_file, tmp_path / "a", **opts))
    real_evaluate = loop.evaluate

    def evaluate_then_ctrl_c(model, data, s, device):  # a real SIGINT, after step 20
        loss = real_evaluate(model, data, s, device)
        if len(loop_losses) == 1:
            os.kill(os.getpid(), signal.SIGINT)
        loop_losses.append(loss)
        return loss

    loop_losses: list[float] = []
    monkeypatch.setattr(loop, "evaluate", evaluate_then_ctrl_c)
    cut = train(tiny_settings(text_file, tmp_path / "b", **opts))
    monkeypatch.undo()
    assert cut.interrupted and cut.step == 20
    assert not list((tmp_path / "b" / "models").glob("*.gguf")), "no model from a cut run"
    resumed = train(tiny_settings(text_file, tmp_path / "b", checkpoint_in=cut.checkpoint_path,
                                  **opts))
    assert resumed.step == 30
    assert resumed.losses[20:] == whole.losses[20:]  # bit-for-bit the same trajectory
    assert resumed.val_losses == whole.val_losses


def test_shape_of_checkpoint_must_match(text_file: Path, trained: Result, tmp_path) -> None:
    with pytest.raises(TrainingInputError, match="shape"):
        train(tiny_settings(text_file, tmp_path, embd=32, checkpoint_in=trained.checkpoint_path))


@pytest.mark.parametrize("content,message", [
    (None, "not found"),
    (b"", "empty"),
    (b"   \n\n", "empty"),
    (b"\x00\x01\x02binary" * 100, "binary"),
    (b"\xff\xfe\xfa not utf-8" * 50, "UTF-8"),
])
def test_bad_training_file(tmp_path: Path, content: bytes | None, message: str) -> None:
    path = tmp_path / "data.txt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(TrainingInputError, match=message):
        train(tiny_settings(path, tmp_path))


def test_context_longer_than_data(tmp_path: Path) -> None:
    path = tmp_path / "short.txt"
    path.write_text("a short text, far too short for the context asked. " * 5)
    with pytest.raises(TrainingInputError, match="longer than the data allows"):
        train(tiny_settings(path, tmp_path, ctx=512, vocab_size=300))


def test_cli_errors_before_any_work(tmp_path: Path, text_file: Path) -> None:
    cases = [(["--train-data", str(text_file), "--embd", "250", "--head", "8"], "divide"),
             (["--train-data", str(tmp_path / "missing.txt")], "not found"),
             (["--train-data", str(text_file), "--lr", "-1"], "--lr")]
    for args, message in cases:
        result = subprocess.run([sys.executable, "-m", "trainer", *args, "--models-dir",
                                 str(tmp_path)], capture_output=True, text=True, timeout=120)
        assert result.returncode == 2, result.stderr
        assert message in result.stderr and "Traceback" not in result.stderr
    assert not list(tmp_path.glob("*.gguf"))


def test_original_example_options_parse() -> None:
    from trainer.cli import parser

    args = parser().parse_args("--train-data x.txt --ctx 32 --embd 256 --head 8 --layer 16 "
                               "-b 32 --seed 42 --iters 10 --predict 5 --threads 2".split())
    settings = Settings(**{k: v for k, v in vars(args).items() if v is not None})
    assert (settings.ctx, settings.embd, settings.head, settings.layer, settings.batch) == \
        (32, 256, 8, 16, 32)
