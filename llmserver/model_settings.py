"""Per-model settings: `models.json` in the models folder, read on each load.

    {"llama-2-7b-chat.q5_k_m": {"n_ctx": 4096, "n_gpu_layers": 32,
                                "system_prompt": "You are a helpful assistant."}}

The names are the LLMSERVER_ settings' (for the ones a model may set differently), plus a
chat template and a default system prompt.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

FILE = "models.json"


class ModelSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")

    n_ctx: int | None = Field(None, ge=64, le=131072)
    n_gpu_layers: int | None = Field(None, ge=-1)
    n_threads: int | None = Field(None, ge=1)
    n_batch: int | None = Field(None, ge=8)
    parallel: int | None = Field(None, ge=0, le=64)
    flash_attn: Literal["off", "on", "auto"] | None = None
    keep_alive: str | None = Field(None, pattern=r"^\s*-?\d+(\.\d+)?\s*[smh]?\s*$")
    chat_template: str | None = Field(None, max_length=100_000)
    system_prompt: str | None = Field(None, max_length=100_000)

    def engine(self) -> dict[str, object]:
        """The overrides of llmserver's own settings."""
        return self.model_dump(exclude_none=True,
                               exclude={"chat_template", "system_prompt", "keep_alive"})


def load(models_dir: Path) -> dict[str, ModelSettings]:
    """Every model's settings; ValueError naming the file and the fault when it is bad."""
    path = models_dir / FILE
    try:
        raw = json.loads(path.read_text())
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        raise ValueError(f"{path}: {exc}") from exc
    if not isinstance(raw, dict):
        raise ValueError(f"{path}: must map model names to settings")
    try:
        return {str(name): ModelSettings.model_validate(value) for name, value in raw.items()}
    except ValidationError as exc:
        first = exc.errors()[0]
        raise ValueError(f"{path}: {'.'.join(map(str, first['loc']))}: {first['msg']}") \
            from exc


def of(models_dir: Path, name: str) -> ModelSettings:
    return load(models_dir).get(name) or ModelSettings()
