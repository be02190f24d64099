"""Write `.env.example` from the services' Settings classes (one source of truth).

Run `python -m tinyllm.envdoc > .env.example`; a test checks the file is current.
"""

from __future__ import annotations

import sys
from typing import Any

from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .catalog import SERVICES, Service

ORDER = ["llmserver", "chatbot", "rag", "trainer"]  # sections of .env.example


def _env_name(prefix: str, name: str, field: FieldInfo) -> str:
    alias = field.validation_alias
    if isinstance(alias, str):
        return alias.upper()
    return f"{prefix}{name}".upper()


def _value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(str(v) for v in value)
    return str(value)


def section(service: Service) -> str | None:
    """The lines for one service, or None if it is not installed here."""
    try:
        settings_cls = service.settings_class
    except ModuleNotFoundError:
        return None
    prefix = service.prefix
    lines = [f"# --- {service.name} ---"]
    for name, field in settings_cls.model_fields.items():
        description = field.description or ""
        env = _env_name(prefix, name, field)
        if field.default is PydanticUndefined and field.default_factory is not None:
            # Computed on this machine (paths, core counts): shown commented out.
            lines += [f"# {description} (default: computed at start)", f"# {env}="]
        else:
            default = None if field.default is PydanticUndefined else field.default
            lines += [f"# {description}", f"{env}={_value(default)}"]
    return "\n".join(lines)


def render() -> str:
    head = ("# TinyLLM settings: copy to .env and edit. Every variable, its meaning and its\n"
            "# default; the same names work with `tinyllm up` and with docker compose.\n"
            "# Written by `python -m tinyllm.envdoc`.\n"
            "\n# Root of the embedded mode's data (models, rag, sessions); default ./data\n"
            "# TINYLLM_DATA_DIR=\n")
    ordered = sorted(SERVICES, key=lambda svc: ORDER.index(svc.name))
    sections = [s for s in (section(svc) for svc in ordered) if s]
    return head + "\n" + "\n\n".join(sections) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render())
