"""A small real text and a trained tiny model, shared by the trainer tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from trainer.config import Settings
from trainer.train import Result, train

LICENSES = Path("/usr/share/common-licenses")


@pytest.fixture(scope="session")
def text_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """About 110 kB of real English: the licence texts every Debian system carries."""
    names = ["GPL-3", "GPL-2", "LGPL-2.1", "Apache-2.0"]
    text = "\n".join((LICENSES / n).read_text() for n in names if (LICENSES / n).is_file())
    assert len(text) > 50_000, "Debian's base-files licences are missing"
    path = tmp_path_factory.mktemp("text") / "licenses.txt"
    path.write_text(text + "\nUnicode works too: café, naïve, 東京, emoji 🙂.\n")
    return path


def tiny_settings(text_file: Path, out: Path, **over: object) -> Settings:
    base = dict(train_data=text_file, ctx=32, embd=64, head=4, head_kv=2, layer=2, batch=8,
                iters=40, eval_every=20, vocab_size=512, models_dir=out / "models",
                predict=16, progress=False, seed=7)
    return Settings(**{**base, **over})


@pytest.fixture(scope="session")
def trained(text_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Result:
    out = tmp_path_factory.mktemp("trained")
    return train(tiny_settings(text_file, out, model_out=Path("tiny-test.gguf")))
