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
SKIP = {"host", "port", "api_key", "log_level", "max_body_bytes", "progress", "more_iters"}
# llama.cpp's train-text-from-scratch spellings, so its command lines run as written.
SHORT = {"batch": "-b", "threads": "-t", "ctx": "-c", "seed": "-s"}
ALIASES = {"lr": "--adam-alpha", "weight_decay": "--adam-decay", "grad_clip": "--adam-gclip"}
ADAM_ITER_DEFAULT = 16  # the original's default Adam steps per example
# Its flags that mean nothing here: accepted, with a one-line note saying why.
MEMORY = "PyTorch sizes its own memory"
DETAILS = "the progress bar shows loss and validation loss; --predict samples at the end"
IGNORED: dict[str, tuple[bool, str]] = {  # flag -> (takes a value, why it is ignored)
    "--use-flash": (False, "PyTorch's fused attention is always used where available"),
    "--no-flash": (False, "PyTorch's fused attention is always used where available"),
    "--use-adam": (False, "AdamW is the optimizer"),
    "--use-scratch": (False, MEMORY), "--no-scratch": (False, MEMORY),
    "--mem-model": (True, MEMORY), "--mem-compute": (True, MEMORY),
    "--mem-compute0": (True, MEMORY), "--mem-compute1": (True, MEMORY),
    "--print-details-interval": (True, DETAILS), "--print-info-interval": (True, DETAILS),
}


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
        flags = [f"--{name.replace('_', '-')}"] + ([SHORT[name]] if name in SHORT else []) \
            + ([ALIASES[name]] if name in ALIASES else [])
        # argparse %-formats help texts: a literal % must be doubled.
        p.add_argument(*flags, dest=name, type=kind, choices=choices, default=None,
                       help=(field.description or "").replace("%", "%%"))
    p.add_argument("--no-progress", dest="progress", action="store_false", default=None,
                   help="no progress bar (e.g. in logs)")
    legacy = p.add_argument_group(
        "train-text-from-scratch compatibility",
        "llama.cpp's original command lines run as written: -n N --adam-iter K trains N x K "
        "steps (a fresh batch each) on top of --checkpoint-in; the flags below are accepted "
        "and ignored with a note.")
    legacy.add_argument("-n", "--examples", dest="examples", type=int, default=None,
                        help="training iterations of --adam-iter steps each")
    legacy.add_argument("--adam-iter", dest="adam_iter", type=int, default=None,
                        help=f"Adam steps per iteration (default {ADAM_ITER_DEFAULT})")
    for flag, (takes_value, why) in IGNORED.items():
        dest = "ignored_" + flag.lstrip("-").replace("-", "_")
        if takes_value:
            legacy.add_argument(flag, dest=dest, metavar="N", default=None,
                                help=f"ignored: {why}")
        else:
            legacy.add_argument(flag, dest=dest, action="store_true", default=None,
                                help=f"ignored: {why}")
    return p


def legacy_options(given: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """Turn the original's -n/--adam-iter and ignored flags into settings and notes."""
    notes = []
    for flag, (_, why) in IGNORED.items():
        if given.pop("ignored_" + flag.lstrip("-").replace("-", "_"), None) is not None:
            notes.append(f"{flag} ignored: {why}")
    examples, adam_iter = given.pop("examples", None), given.pop("adam_iter", None)
    if examples is not None or adam_iter is not None:
        if "iters" in given:
            raise ValueError("give either --iters or -n/--adam-iter, not both")
        n, k = examples or 1, adam_iter or ADAM_ITER_DEFAULT
        if n < 1 or k < 1:
            raise ValueError("-n and --adam-iter must be at least 1")
        given["more_iters"] = n * k
        notes.append(f"-n {n} x --adam-iter {k}: {n * k} optimizer steps on top of the "
                     "checkpoint's, a fresh batch each")
    return given, notes


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    setup_logging("info", "trainer")
    try:
        given, notes = legacy_options({k: v for k, v in vars(args).items() if v is not None})
    except ValueError as exc:
        sys.stderr.write(f"tinyllm train: error: {exc}\n")
        return 2
    for note in notes:
        sys.stderr.write(f"tinyllm train: note: {note}\n")
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
