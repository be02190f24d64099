"""Training text: checked, tokenized, split into train/validation, sampled in batches."""

from __future__ import annotations

import gzip
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import TrainingInputError
from .tokenizer import BPETokenizer

# Cut points where GPT-2's pre-tokenizer always splits (after a newline, before non-space),
# so chunked encoding gives exactly the ids of encoding the whole text at once.
_CUT = re.compile(r"(?<=\n)(?=\S)")
CHUNK_CHARS = 64_000


def read_text(path: Path | None) -> str:
    """The file as text, or TrainingInputError for missing, empty or binary input."""
    if path is None:
        raise TrainingInputError("no training data: pass --train-data FILE")
    if not path.exists():
        raise TrainingInputError(f"training data not found: {path}")
    if not path.is_file():
        raise TrainingInputError(f"training data is not a regular file: {path}")
    raw = path.read_bytes()
    if path.suffix == ".gz":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as exc:
            raise TrainingInputError(f"{path} is not a valid gzip file: {exc}") from None
    if not raw.strip():
        raise TrainingInputError(f"training data is empty: {path}")
    if b"\x00" in raw[:1_000_000]:
        raise TrainingInputError(f"{path} looks binary (NUL bytes); the trainer needs UTF-8 text")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TrainingInputError(
            f"{path} is not UTF-8 text (invalid byte at offset {exc.start})") from None
    controls = sum(1 for ch in text[:100_000] if ord(ch) < 32 and ch not in "\n\r\t\f\v")
    if controls > 0.01 * min(len(text), 100_000):
        raise TrainingInputError(f"{path} looks binary (many control characters)")
    return text


def chunks(text: str, size: int = CHUNK_CHARS) -> list[str]:
    """Split text at safe cut points into pieces of about `size` characters."""
    out: list[str] = []
    start = 0
    while start < len(text):
        end = start + size
        if end >= len(text):
            out.append(text[start:])
            break
        m = _CUT.search(text, end)
        cut = m.start() if m else len(text)
        out.append(text[start:cut])
        start = cut
    return out


def encode(tok: BPETokenizer, text: str) -> torch.Tensor:
    """All token ids of text as one int64 tensor."""
    ids = [i for piece in tok.encode_batch(chunks(text)) for i in piece]
    return torch.tensor(ids, dtype=torch.long)


@dataclass
class TokenData:
    train: torch.Tensor
    val: torch.Tensor
    ctx: int

    @classmethod
    def split(cls, ids: torch.Tensor, ctx: int, val_fraction: float) -> TokenData:
        """Hold out the tail; both parts must fit at least one window of ctx + 1 tokens."""
        n_val = int(len(ids) * val_fraction)
        train, val = ids[: len(ids) - n_val], ids[len(ids) - n_val:]
        need = ctx + 1
        if len(val) < need or len(train) < need:
            most = max(0, int(len(ids) * val_fraction) - 1)
            raise TrainingInputError(
                f"--ctx {ctx} is longer than the data allows: {len(ids)} tokens give a "
                f"validation split of {len(val)} tokens, which needs at least {need}; "
                f"use --ctx {most} or less, or more text")
        return cls(train, val, ctx)

    def batch(self, split: str, batch: int, gen: torch.Generator,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
        """Random windows (x, y = x shifted by one) drawn with the given generator."""
        data = self.train if split == "train" else self.val
        starts = torch.randint(len(data) - self.ctx - 1 + 1, (batch,), generator=gen)
        offsets = torch.arange(self.ctx + 1)
        windows = data[starts[:, None] + offsets]
        x, y = windows[:, :-1], windows[:, 1:]
        if device.type == "cuda":
            return (x.pin_memory().to(device, non_blocking=True),
                    y.pin_memory().to(device, non_blocking=True))
        return x.to(device), y.to(device)
