"""What the installed llama.cpp runs on here: its CPU instruction sets and its GPU devices.

llmserver logs this at start, so a log tells which build served (a portable rebuild, a CUDA
build that found no device) without a shell on the host.
"""

from __future__ import annotations

import ctypes
import functools
import logging
from dataclasses import dataclass

log = logging.getLogger(__name__)

# ggml's enum ggml_backend_dev_type
_DEVICE_TYPES = {0: "CPU", 1: "GPU", 2: "iGPU", 3: "accelerator"}


@dataclass(frozen=True)
class Device:
    name: str
    description: str
    kind: str


@functools.cache
def _ggml() -> ctypes.CDLL:
    """ggml's library with the signatures of the backend-registry calls used here."""
    from llama_cpp import _ggml

    lib = _ggml.libggml
    for fn in (lib.ggml_backend_dev_count, lib.ggml_backend_reg_count):
        fn.restype = ctypes.c_size_t
    for fn in (lib.ggml_backend_dev_get, lib.ggml_backend_reg_get):
        fn.argtypes, fn.restype = [ctypes.c_size_t], ctypes.c_void_p
    for fn in (lib.ggml_backend_dev_name, lib.ggml_backend_dev_description,
               lib.ggml_backend_reg_name):
        fn.argtypes, fn.restype = [ctypes.c_void_p], ctypes.c_char_p
    lib.ggml_backend_dev_type.argtypes = [ctypes.c_void_p]
    lib.ggml_backend_dev_type.restype = ctypes.c_int
    return lib


def devices() -> list[Device]:
    """The backend devices ggml registered (the CPU, and each GPU a GPU build found)."""
    lib = _ggml()
    found = []
    for i in range(int(lib.ggml_backend_dev_count())):
        dev = lib.ggml_backend_dev_get(i)
        found.append(Device((lib.ggml_backend_dev_name(dev) or b"").decode(),
                            (lib.ggml_backend_dev_description(dev) or b"").decode(),
                            _DEVICE_TYPES.get(int(lib.ggml_backend_dev_type(dev)), "other")))
    return found


def gpus() -> list[Device]:
    """The devices llama.cpp can offload layers to."""
    return [d for d in devices() if d.kind != "CPU"]


def has_gpu() -> bool:
    return bool(gpus())


def registries() -> list[str]:
    """The backends this build carries ("CPU", and "CUDA" in a CUDA build even where no
    device is found)."""
    lib = _ggml()
    return [(lib.ggml_backend_reg_name(lib.ggml_backend_reg_get(i)) or b"").decode()
            for i in range(int(lib.ggml_backend_reg_count()))]


def summary(n_gpu_layers: int) -> list[str]:
    """Lines for the start-up log: instruction sets, then GPU devices and offload."""
    import llama_cpp

    lines = ["llama.cpp " + llama_cpp.llama_print_system_info().decode().strip()]
    found = gpus()
    if found:
        layers = "every layer" if n_gpu_layers < 0 else f"{n_gpu_layers} layers"
        for dev in found:
            lines.append(f"GPU device {dev.name}: {dev.description}")
        lines.append(f"offloading {layers} to the GPU (LLMSERVER_N_GPU_LAYERS={n_gpu_layers})")
    else:
        others = [r for r in registries() if r not in ("CPU", "BLAS", "RPC")]
        if others:
            kind = "/".join(others)
            lines.append(f"{kind} build, but no {kind} device found: running on the CPU")
        else:
            lines.append("CPU build: running on the CPU")
    if not found and n_gpu_layers != 0:
        lines.append(f"LLMSERVER_N_GPU_LAYERS={n_gpu_layers} has no GPU to offload to: "
                     "every layer runs on the CPU")
    return lines


def log_summary(n_gpu_layers: int) -> None:
    for line in summary(n_gpu_layers):
        log.info("%s", line)
