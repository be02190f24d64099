"""What every `python -m SERVICE` does: read settings, set up logging, run uvicorn."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import uvicorn

from .config import ServiceSettings
from .logs import setup_logging


def serve(name: str, settings: ServiceSettings, create_app: Callable[[Any], Any],
          **uvicorn_options: Any) -> None:
    """Run `create_app(settings)` on the settings' host and port until SIGINT/SIGTERM."""
    setup_logging(settings.log_level, name)
    options = {"log_level": settings.log_level, "timeout_graceful_shutdown": 5,
               **uvicorn_options}
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, **options)
