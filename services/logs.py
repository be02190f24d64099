"""Logging setup shared by the services and the command line."""

from __future__ import annotations

import logging


def setup_logging(level: str = "info", service: str = "tinyllm") -> None:
    """Configure the root logger once: `time level service: message`."""
    logging.basicConfig(
        level=getattr(logging, level.upper(), logging.INFO),
        format=f"%(asctime)s %(levelname)s {service}: %(message)s",
        datefmt="%H:%M:%S",
        force=True,
    )
    # One line per outgoing request drowns the service's own log.
    logging.getLogger("httpx").setLevel(logging.WARNING)
