"""Checkpoints: everything needed to continue exactly, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .config import TrainingInputError

ITERATION = "ITERATION"


def save(path: Path, state: dict[str, Any]) -> Path:
    """torch.save to a temp file beside `path`, then rename: never a torn checkpoint.

    ITERATION in the name (train-text-from-scratch's convention) becomes the step, and the
    same state is also written with LATEST in its place. Returns the path written.
    """
    if ITERATION in path.name:
        save(latest(path), state)
        path = path.with_name(path.name.replace(ITERATION, str(state["step"])))
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


def latest(path: Path) -> Path:
    """The LATEST name of an ITERATION pattern (the path itself otherwise)."""
    return path.with_name(path.name.replace(ITERATION, "LATEST"))


def load(path: Path) -> dict[str, Any]:
    """The checkpoint's state. weights_only: tensors and plain data only, so a checkpoint
    from elsewhere cannot run code when loaded (a pickle with code is refused)."""
    if not path.is_file():
        raise TrainingInputError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a corrupt or foreign file: say so before any work
        raise TrainingInputError(f"{path} is not a trainer checkpoint: {exc}") from None
