"""Settings base shared by every service (pydantic-settings)."""

from __future__ import annotations

import re
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent
SECRET_SUFFIXES = ("_key", "_password", "_token", "_secret")
# The password of scheme://user:password@host, in one URL or a comma list of them.
URL_PASSWORD = re.compile(r"(://[^/:@\s,]*:)[^@\s,]*@")
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
LOOPBACK_NAMES = ["127.0.0.1", "localhost", "[::1]"]


def split_list(value: str) -> list[str]:
    """The non-empty items of a comma list, stripped."""
    return [part.strip() for part in value.split(",") if part.strip()]


def default_data_dir() -> Path:
    """The data folder of the embedded mode: `data/` beside the code, or TINYLLM_DATA_DIR."""
    import os

    return Path(os.environ.get("TINYLLM_DATA_DIR", REPO_ROOT / "data"))


def shown(name: str, value: object) -> str:
    """A setting's value fit to print or log: secrets as `(set)`, URL passwords as `***`.

    Args:
        name: the field's name; one ending in a `SECRET_SUFFIXES` entry is a secret.
        value: the field's value; a SecretStr is a secret whatever its name.
    """
    if value is None:
        return "None"
    if isinstance(value, SecretStr) or name.lower().endswith(SECRET_SUFFIXES):
        return "(set)"
    return URL_PASSWORD.sub(r"\1***@", str(value))


class ServiceSettings(BaseSettings):
    """Fields every service has. Subclasses set `env_prefix` (e.g. LLMSERVER_)."""

    # Empty values count as unset, so a copied .env.example changes nothing.
    model_config = SettingsConfigDict(env_file=".env", extra="ignore", populate_by_name=True,
                                      env_ignore_empty=True)

    host: str = Field("127.0.0.1", description="Address to bind; 0.0.0.0 inside containers.")
    port: int = Field(8000, ge=1, le=65535, description="TCP port to listen on.")
    api_key: SecretStr | None = Field(
        None, description="Bearer key required on every route but /health; unset means no auth."
    )
    log_level: str = Field("info", description="Logging level: debug, info, warning, error.")
    max_body_bytes: int = Field(
        1_000_000, ge=1024, description="Largest request body accepted, in bytes (413 beyond)."
    )
    allowed_hosts: str = Field("", description="Comma list of Host names answered (against DNS "
                               "rebinding); * for any; empty: the loopback names when HOST is "
                               "loopback, any otherwise.")

    def host_list(self) -> list[str] | None:
        """Allowed Host names (lower case, IPv6 in brackets); None means any."""
        names = [h.lower() for h in split_list(self.allowed_hosts)]
        if "*" in names:
            return None
        if names:
            return names
        return LOOPBACK_NAMES if self.host in LOOPBACK else None

    def env_name(self, field: str) -> str:
        """The environment variable of a field, e.g. LLMSERVER_ALLOWED_HOSTS."""
        return f"{self.model_config.get('env_prefix', '')}{field}".upper()
