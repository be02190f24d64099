"""`tinyllm train` / `python -m trainer`: options built from the Settings fields."""

from __future__ import annotations

import argparse
import logging
import sys
import typing
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from services.logs import setup_logging

from .config import Settings, TrainingInputError

log = logging.getLogger("trainer")
SHORT = {"batch": "-b"}  # the original train-text-from-scratch spelling
SKIP = {"host", "port", "api_key", "log_level", "max_body_bytes", "progress"}


def _arg_type(annotation: Any) -> tuple[Any, list[str] | None]:
    args = [a for a in typing.get_args(annotation) if a is not type(None)]
    if typing.get_origin(annotation) is typing.Literal:
        return str, list(typing.get_args(annotation))
    base = args[0] if args else annotation
    if typing.get_origin(base) is typing.Literal:
        return str, list(typing.get_args(base))
    return (Path if base is Path else base), None


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="tinyllm train", description="Train a small llama model on a text file and "
        "write a GGUF that llmserver serves. Every option can also be set as TRAINER_<NAME>.",
        epilog="Example: tinyllm train --train-data shakespeare.txt --ctx 32 --embd 256 "
               "--head 8 --layer 16 -b 32 --seed 42")
    for name, field in Settings.model_fields.items():
        if name in SKIP:
            continue
        kind, choices = _arg_type(field.annotation)
        flags = [f"--{name.replace('_', '-')}"] + ([SHORT[name]] if name in SHORT else [])
        p.add_argument(*flags, dest=name, type=kind, choices=choices, default=None,
                       help=field.description)
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                   help="no progress bar (e.g. in logs)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    given = {k: v for k, v in vars(args).items() if v is not None}
    setup_logging("info", "trainer")
    try:
        settings = Settings(**given)
        from .train import train  # torch is imported only once the options are good

        result = train(settings)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = "--" + str(first["loc"][0]).replace("_", "-") if first["loc"] else "options"
        sys.stderr.write(f"tinyllm train: error: {where}: {first['msg']}\n")
        return 2
    except TrainingInputError as exc:
        sys.stderr.write(f"tinyllm train: error: {exc}\n")
        return 2
    if result.interrupted:
        return 130
    out = sys.stdout
    out.write(f"model: {result.model_path}\ncheckpoint: {result.checkpoint_path}\n")
    if result.val_losses:
        out.write(f"validation loss: {result.val_losses[-1][1]:.4f} after {result.step} steps "
                  f"({result.tokens_per_s:,.0f} tokens/s)\n")
    if result.sample:
        out.write(f"sample:\n{result.sample}\n")
    return 0
