"""The `tinyllm` command: one entry point for the stack's tools."""

from __future__ import annotations

import sys
from collections.abc import Callable

Main = Callable[[list[str]], int | None]


# Each loader imports its command only when it runs, so `tinyllm chat` never loads torch.
def _up() -> Main:
    from .launcher import main

    return main


def _chat() -> Main:
    from chatbot.terminal import main

    return main


def _ingest() -> Main:
    from rag.ingest_cli import main

    return main


def _train() -> Main:
    from trainer.cli import main

    return main


def _bench() -> Main:
    from bench.run import main

    return main


def _backup() -> Main:
    from .backup import backup_main

    return backup_main


def _restore() -> Main:
    from .backup import restore_main

    return restore_main


def _pull() -> Main:
    from .pull import main

    return main


def _models() -> Main:
    from .models_cli import list_main

    return list_main


def _rm() -> Main:
    from .models_cli import rm_main

    return rm_main


def _run() -> Main:
    from .models_cli import run_main

    return run_main


def _doctor() -> Main:
    from .doctor import main

    return main


# subcommand -> (loader of its main(argv), one-line help)
COMMANDS: dict[str, tuple[Callable[[], Main], str]] = {
    "up": (_up, "run the stack on this host (llmserver, rag, chatbot)"),
    "chat": (_chat, "chat in the terminal with any OpenAI-compatible server"),
    "ingest": (_ingest, "upload documents into a collection, with a progress bar"),
    "train": (_train, "train a tiny llama model from a text file and export GGUF"),
    "bench": (_bench, "run the benchmarks and write docs/benchmarks.md"),
    "backup": (_backup, "write models, collections and chat data into one archive"),
    "restore": (_restore, "bring a backup back into an empty stack"),
    "pull": (_pull, "download a GGUF model (Hugging Face or any HTTPS URL) into the models folder"),
    "models": (_models, "list the models llmserver can serve, with size and quantisation"),
    "rm": (_rm, "remove a model from the models folder"),
    "run": (_run, "chat with a model in the terminal, pulling it first if missing"),
    "doctor": (_doctor, "check what this machine gives the stack and what will go wrong"),
}


def usage() -> str:
    rows = "\n".join(f"  {name:<8} {help_}" for name, (_, help_) in COMMANDS.items())
    return f"usage: tinyllm COMMAND [ARGS...]\n\ncommands:\n{rows}\n\n" \
           "Run 'tinyllm COMMAND --help' for a command's options."


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] in ("-h", "--help", "help"):
        sys.stdout.write(usage() + "\n")
        return 0 if argv else 2
    name, rest = argv[0], argv[1:]
    if name not in COMMANDS:
        sys.stderr.write(f"tinyllm: unknown command '{name}'\n\n{usage()}\n")
        return 2
    result = COMMANDS[name][0]()(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
