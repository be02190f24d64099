"""What every `python -m SERVICE` does: read settings, set up logging, run uvicorn."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import uvicorn

from .config import ServiceSettings, shown
from .logs import setup_logging


def usage(name: str, settings: ServiceSettings) -> str:
    """`python -m NAME --help`: the settings it reads, with their values now."""
    prefix = str(settings.model_config.get("env_prefix", ""))
    rows = []
    for field_name, field in type(settings).model_fields.items():
        alias = field.validation_alias
        env = alias.upper() if isinstance(alias, str) else f"{prefix}{field_name}".upper()
        now = shown(field_name, getattr(settings, field_name))
        rows.append(f"  {env}\n      {field.description or ''} Now: {now}")
    return (f"usage: python -m {name}\n\nServes {name} over HTTP. It takes no arguments: "
            "every setting is an environment variable (or a line in .env):\n\n"
            + "\n".join(rows) + "\n")


def serve(name: str, settings: ServiceSettings, create_app: Callable[[Any], Any],
          argv: list[str] | None = None, **uvicorn_options: Any) -> None:
    """Run `create_app(settings)` on the settings' host and port until SIGINT/SIGTERM.

    `--help` prints the settings instead; any other argument is an error (exit 2), so a
    mistyped flag never starts a server that ignores it.
    """
    args = sys.argv[1:] if argv is None else argv
    if args:
        if args[0] in ("-h", "--help"):
            sys.stdout.write(usage(name, settings))
            raise SystemExit(0)
        sys.stderr.write(f"python -m {name}: unexpected argument {args[0]!r}; settings come "
                         f"from the environment (python -m {name} --help)\n")
        raise SystemExit(2)
    setup_logging(settings.log_level, name)
    options = {"log_level": settings.log_level, "timeout_graceful_shutdown": 5,
               **uvicorn_options}
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, **options)
