"""The `tinyllm` command: one entry point for the stack's tools."""

from __future__ import annotations

import importlib
import sys

# subcommand -> (module with main(argv), one-line help)
COMMANDS = {
    "up": ("services.launcher", "run the stack on this host (llmserver, rag, chatbot)"),
    "chat": ("chatbot.terminal", "chat in the terminal with any OpenAI-compatible server"),
    "ingest": ("rag.ingest_cli", "upload documents into a collection, with a progress bar"),
    "train": ("trainer.cli", "train a tiny llama model from a text file and export GGUF"),
    "bench": ("bench.run", "run the benchmarks and write docs/benchmarks.md"),
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
    module = importlib.import_module(COMMANDS[name][0])
    result = module.main(rest)
    return int(result or 0)


if __name__ == "__main__":
    sys.exit(main())
