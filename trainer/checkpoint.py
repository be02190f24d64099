"""Checkpoints: everything needed to continue exactly, written atomically."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from .config import TrainingInputError


def save(path: Path, state: dict[str, Any]) -> None:
    """torch.save to a temp file beside `path`, then rename: never a torn checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def load(path: Path) -> dict[str, Any]:
    if not path.is_file():
        raise TrainingInputError(f"checkpoint not found: {path}")
    try:
        return torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a corrupt or foreign file: say so before any work
        raise TrainingInputError(f"{path} is not a trainer checkpoint: {exc}") from None
