"""The services this host can run, described by their own Settings classes.

Ports, env prefixes and hosts are read from each service's `config.Settings` (the one
place they are defined), never repeated here.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from dataclasses import dataclass

from services.config import ServiceSettings


def _llmserver() -> type[ServiceSettings]:
    from llmserver.config import Settings

    return Settings


def _rag() -> type[ServiceSettings]:
    from rag.config import Settings

    return Settings


def _chatbot() -> type[ServiceSettings]:
    from chatbot.config import Settings

    return Settings


def _trainer() -> type[ServiceSettings]:
    from trainer.config import Settings

    return Settings


@dataclass(frozen=True)
class Service:
    """One service: its package (run as `python -m NAME`) and its Settings class."""

    name: str
    load_settings: Callable[[], type[ServiceSettings]]
    http: bool = True  # False for batch jobs (the trainer)

    @property
    def settings_class(self) -> type[ServiceSettings]:
        return self.load_settings()

    @property
    def prefix(self) -> str:
        return str(self.settings_class.model_config.get("env_prefix", ""))

    def installed(self) -> bool:
        """Whether `python -m NAME` would work (an image may carry only some services)."""
        try:
            return importlib.util.find_spec(f"{self.name}.__main__") is not None
        except ModuleNotFoundError:
            return False

    def settings(self) -> ServiceSettings:
        """The settings the service itself would read now (environment, `.env`)."""
        return self.settings_class()

    def url(self) -> str:
        """Where a client on this host reaches it (a wildcard bind means loopback)."""
        s = self.settings()
        host = "127.0.0.1" if s.host in ("0.0.0.0", "::", "") else s.host
        return f"http://{host}:{s.port}"


# Start order of `tinyllm up`: what a service calls starts before it.
SERVICES = [
    Service("llmserver", _llmserver),
    Service("rag", _rag),
    Service("chatbot", _chatbot),
    Service("trainer", _trainer, http=False),
]


def http_services() -> list[Service]:
    return [s for s in SERVICES if s.http]
