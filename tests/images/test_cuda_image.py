"""llmserver's cuda image, built here with no network and no GPU, serving on the CPU.

The image is the slim Python base plus llama.cpp compiled with CUDA against NVIDIA's pip
packages (`scripts/wheelhouse.sh --cuda` puts the wheel and the CUDA runtime wheels into
wheels/cuda/; the first compile is long on two cores, then cached in ~/.cache/tinyllm).
On this machine there is no GPU and no driver: the container must start, say that it found
no GPU device and runs on the CPU, and answer. What only a GPU can prove (offloaded layers,
the kernels themselves) is scripts/gpu-check.sh's job on a GPU host.

Runs with `scripts/test.sh --images` (marker `images`); needs root or a running engine.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time

import httpx
import pytest

from services.config import REPO_ROOT
from tests.images import engine
from tests.utils.procs import free_port

pytestmark = [pytest.mark.images, pytest.mark.slow, pytest.mark.timeout(3 * 3600)]
TAG = "tinyllm/llmserver:cuda"


def ensure_cuda_wheelhouse() -> None:
    """wheels/cuda/ with the CUDA build and its runtime wheels (compiled once, cached)."""
    cuda = engine.WHEELS / "cuda"
    if list(cuda.glob("llama_cpp_python-*.whl")) and list(cuda.glob("nvidia_cublas-*.whl")):
        return
    # One architecture unless told otherwise: the same build as the default five, in about a
    # fifth of the compile (20 minutes on two idle cores, once).
    archs = os.environ.get("TINYLLM_CUDA_ARCHS", "90-virtual")
    subprocess.run(["bash", str(REPO_ROOT / "scripts/wheelhouse.sh"), "--cuda"], check=True,
                   env={**os.environ, "PYTHON": sys.executable, "TINYLLM_CUDA_ARCHS": archs},
                   timeout=3 * 3600)


@pytest.fixture(scope="module")
def cuda_image() -> str:
    why = engine.ensure_engine()
    if why:
        pytest.skip(why)
    engine.ensure_base()
    engine.ensure_wheelhouse()
    ensure_cuda_wheelhouse()
    started = time.perf_counter()
    engine.build("llmserver", "--target", "cuda", tag="cuda", timeout=3600)
    sys.stderr.write(f"cuda image built in {time.perf_counter() - started:.0f} s, "
                     f"{engine.image_mb(TAG):.0f} MB\n")
    return TAG


def test_cuda_image_has_no_cuda_base_and_the_runtime_from_pip(cuda_image: str) -> None:
    history = engine.docker("history", "--no-trunc", "--format", "{{.CreatedBy}}",
                            cuda_image).stdout
    assert "nvidia/cuda" not in history
    listing = engine.docker("run", "--rm", "--network", "none", "--entrypoint", "sh", cuda_image,
                            "-c", "ls /opt/venv/lib/python3.11/site-packages/llama_cpp/lib; "
                            "pip list 2>/dev/null | grep -i nvidia").stdout
    assert "libggml-cuda.so" in listing
    for lib in ("libcudart.so.13", "libcublas.so.13", "libcublasLt.so.13"):
        assert lib in listing, listing
    assert "nvidia-cuda-runtime" in listing and "nvidia-cublas" in listing
    assert "nvidia-cuda-nvcc" not in listing  # the compiler stays in the build stage


def test_cuda_image_serves_on_the_cpu_without_a_gpu(cuda_image: str) -> None:
    port = free_port()
    name = f"tinyllm-cuda-test-{port}"
    engine.docker("run", "-d", "--rm", "--name", name, "--network", "host",
                  "-e", f"LLMSERVER_PORT={port}", "-e", "LLMSERVER_HOST=127.0.0.1", cuda_image)
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            try:
                if httpx.get(url + "/health", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            time.sleep(1)
        reply = httpx.post(url + "/v1/completions", timeout=120, json={
            "prompt": "The capital of France is", "max_tokens": 8, "temperature": 0})
        assert reply.status_code == 200, reply.text
        assert reply.json()["usage"]["completion_tokens"] > 0
        logs = engine.docker("logs", name).stdout + engine.docker("logs", name).stderr
        assert "CUDA build, but no CUDA device found: running on the CPU" in logs, logs[-3000:]
        assert "LLMSERVER_N_GPU_LAYERS=-1 has no GPU to offload to" in logs
    finally:
        engine.docker("rm", "-f", name, check=False)
