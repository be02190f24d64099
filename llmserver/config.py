"""llmserver settings (env prefix LLMSERVER_)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.config import ServiceSettings, default_data_dir

from .models import DEFAULT_MODEL


class Settings(ServiceSettings):
    """Everything llmserver reads from the environment or `.env`."""

    model_config = SettingsConfigDict(env_prefix="LLMSERVER_", env_file=".env", extra="ignore")

    port: int = Field(8000, ge=1, le=65535, description="TCP port to listen on.")
    models_dir: Path = Field(
        default_factory=lambda: default_data_dir() / "models",
        description="Folder scanned for *.gguf models (the trainer writes here).",
    )
    default_model: str = Field(
        DEFAULT_MODEL, description="Model loaded at start and used when a request names none."
    )
    n_ctx: int = Field(
        2048, ge=64, le=131072,
        description="Context window of one request in tokens; a model trained with a "
                    "shorter context is served at its own.")
    n_threads: int = Field(
        default_factory=lambda: os.cpu_count() or 1, ge=1,
        description="CPU threads for generation (default: all cores).",
    )
    n_batch: int = Field(512, ge=8, description="Prompt tokens evaluated per batch.")
    n_gpu_layers: int = Field(
        0, ge=-1, description="Layers offloaded to the GPU; -1 means all (CUDA builds only)."
    )
    flash_attn: Literal["off", "on", "auto"] = Field(
        "off",
        description="llama.cpp's flash attention. off (as llama-cpp-python's Llama): answers "
                    "are Llama's. on, or auto (on where the backend has it, CPU and CUDA do): "
                    "decodes many slots faster (on 2 CPU cores about a fifth more tokens/s at "
                    "8 users), but rounds more by batch and cache, so greedy answers can part "
                    "at near-ties.",
    )
    parallel: int = Field(
        0, ge=0, le=64,
        description="Slots: requests decoded together in one batch; 0 sizes it for the "
                    "machine (4 on CPU, 16 with GPU layers on a GPU llama.cpp found).",
    )
    prefill_chunk: int = Field(
        128, ge=8, description="Prompt tokens one slot evaluates per decode step, so a long "
                               "prompt never stalls the running streams for long.",
    )
    stream_interval_ms: float = Field(
        0, ge=0, le=1000,
        description="Hand a stream's tokens to the HTTP side at most this often (the first "
                    "token and the end at once): fewer wake-ups and writes per token, which "
                    "leaves more CPU to decoding on a machine with few cores; 0 sends each "
                    "token as it comes.",
    )
    queue_size: int = Field(
        16, ge=0, le=10000,
        description="Requests that may wait when every slot is busy; beyond it answers 429.",
    )
    max_loaded_models: int = Field(
        1, ge=1, le=16, description="Models kept in memory at once (least recently used go)."
    )
    seed: int = Field(-1, description="Default sampling seed; -1 picks a random one.")

    def slots(self, gpu: bool = True) -> int:
        """`parallel`, or sized for the machine: 16 with layers on a GPU, 4 on the CPU
        (`gpu`: whether llama.cpp found a GPU device to offload to)."""
        if self.parallel:
            return self.parallel
        return 16 if self.n_gpu_layers and gpu else 4
