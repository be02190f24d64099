"""llmserver settings (env prefix LLMSERVER_)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.config import ServiceSettings, default_data_dir

from .models import DEFAULT_MODEL

GPU_SLOTS = 16
CPU_SLOTS = 8  # eight users decoded together: the batch costs little more than one
KV_SHARE = 0.25  # of the available memory, at most, for the slots' KV cache on the CPU


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
        default_factory=lambda: physical_cores(), ge=1,
        description="CPU threads for generation (default: the physical cores this process "
                    "may use, as llama.cpp chooses; hyperthreads only slow decoding).",
    )
    n_batch: int = Field(512, ge=8, description="Prompt tokens evaluated per batch.")
    n_gpu_layers: int = Field(
        0, ge=-1, description="Layers offloaded to the GPU; -1 means all (CUDA builds only)."
    )
    flash_attn: Literal["off", "on", "auto"] = Field(
        "auto",
        description="llama.cpp's flash attention. auto (as llama.cpp's own server): on where "
                    "the backend has it (CPU and CUDA do), which decodes many slots faster "
                    "(on 2 CPU cores about a fifth more tokens/s at 8 users) but rounds by "
                    "batch and cache, so greedy answers can part from Llama's at near-ties. "
                    "off (as llama-cpp-python's Llama): a lone greedy answer is Llama's, "
                    "token for token.",
    )
    parallel: int = Field(
        0, ge=0, le=64,
        description="Slots: requests decoded together in one batch; 0 sizes it for the "
                    "machine: 16 with GPU layers on a GPU llama.cpp found; on the CPU 8 "
                    "(eight users at once), fewer when their KV cache would take more than a "
                    "quarter of the available memory.",
    )
    prefill_chunk: int = Field(
        128, ge=8, description="Prompt tokens one slot evaluates per decode step, so a long "
                               "prompt never stalls the running streams for long.",
    )
    stream_interval_ms: float = Field(
        50, ge=0, le=1000,
        description="Hand a stream's tokens to the HTTP side at most this often (the first "
                    "token and the end at once): fewer wake-ups and writes per token, which "
                    "leaves more CPU to decoding on a machine with few cores. The default 50 "
                    "(20 updates a second) only groups tokens that come faster than that; 0 "
                    "sends each token as it comes.",
    )
    queue_size: int = Field(
        16, ge=0, le=10000,
        description="Requests that may wait when every slot is busy; beyond it answers 429.",
    )
    max_loaded_models: int = Field(
        1, ge=1, le=16, description="Models kept in memory at once (least recently used go)."
    )
    seed: int = Field(-1, description="Default sampling seed; -1 picks a random one.")
    keep_alive: str = Field(
        "-1", pattern=r"^\s*-?\d+(\.\d+)?\s*[smh]?\s*$",
        description="How long a model stays loaded after its last request: seconds, or 30s, "
                    "5m, 1h; -1 keeps it loaded (the default), 0 unloads it at once. A "
                    "request's keep_alive (as Ollama's API takes it) sets it for its model.")
    memory_budget_mb: int = Field(
        0, ge=0,
        description="Memory a model may need to be loaded (weights plus KV cache), in MB; 0: "
                    "the memory available now. A model that needs more is refused with 507.")

    def slots(self, gpu: bool = True, kv_bytes: int | None = None) -> int:
        """`parallel`, or sized for the machine: 16 with layers on a GPU; on the CPU 8, or as
        many as fit a quarter of the available memory.

        Args:
            gpu: whether llama.cpp found a GPU device to offload to.
            kv_bytes: one slot's KV cache (the model's, at the served context), when known.
        """
        if self.parallel:
            return self.parallel
        if self.n_gpu_layers and gpu:
            return GPU_SLOTS
        free = available_memory()
        if kv_bytes and free:
            return max(1, min(CPU_SLOTS, int(free * KV_SHARE) // kv_bytes))
        return CPU_SLOTS


def physical_cores() -> int:
    """The physical cores this process may run on (each core counted once however many
    hardware threads it has), as llama.cpp picks its default thread count."""
    try:
        allowed = os.sched_getaffinity(0)
    except (AttributeError, OSError):
        return os.cpu_count() or 1
    cores: set[tuple[str, str]] = set()
    try:
        for block in Path("/proc/cpuinfo").read_text().split("\n\n"):
            fields = dict(line.split(":", 1) for line in block.splitlines() if ":" in line)
            fields = {k.strip(): v.strip() for k, v in fields.items()}
            if fields.get("processor", "").isdigit() and int(fields["processor"]) in allowed:
                cores.add((fields.get("physical id", "0"), fields.get("core id",
                                                                      fields["processor"])))
    except OSError:
        pass
    return max(1, min(len(cores) or len(allowed), len(allowed)))


def available_memory() -> int | None:
    """MemAvailable in bytes (Linux), or None."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def duration_s(value: str | float | int) -> float:
    """Seconds of a keep_alive value (12, "12", "30s", "5m", "1h"); negative: forever."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    text = str(value).strip().lower()
    scale = {"s": 1, "m": 60, "h": 3600}.get(text[-1:], 0)
    try:
        return float(text[:-1] if scale else text) * (scale or 1)
    except ValueError:
        raise ValueError(f"'{value}' is not a duration (use seconds, or 30s, 5m, 1h)") from None
