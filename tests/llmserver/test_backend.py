"""llmserver says at start what llama.cpp runs on: instruction sets, devices, offload."""

from __future__ import annotations

import llama_cpp

from llmserver import backend
from tests.utils.procs import ServiceProcess


def test_the_start_log_names_the_instruction_sets_and_the_device(
        llm_server: ServiceProcess) -> None:
    log = llm_server.log_path.read_text(errors="replace")
    info = llama_cpp.llama_print_system_info().decode().strip()
    assert f"llama.cpp {info}" in log
    assert "CPU build: running on the CPU" in log  # no GPU on these machines


def test_gpu_layers_without_a_gpu_are_reported_as_running_on_the_cpu() -> None:
    lines = backend.summary(-1)
    assert [d.kind for d in backend.devices()] == ["CPU"]
    assert lines[-1] == ("LLMSERVER_N_GPU_LAYERS=-1 has no GPU to offload to: every layer "
                         "runs on the CPU")
    assert len(backend.summary(0)) == 2


def test_slots_follow_the_gpu_llama_cpp_found_not_the_setting_alone() -> None:
    from llmserver.config import Settings

    offload = Settings(n_gpu_layers=-1)
    assert offload.slots(gpu=True) == 16
    assert offload.slots(gpu=False) == 8  # a CUDA build on a machine with no GPU
    assert Settings(n_gpu_layers=0).slots(gpu=True) == 8
    assert Settings(n_gpu_layers=-1, parallel=3).slots(gpu=False) == 3
    assert backend.has_gpu() is False  # no GPU on these machines


def test_cpu_slots_fit_a_quarter_of_the_available_memory(monkeypatch) -> None:  # noqa: ANN001
    from llmserver import config

    monkeypatch.setattr(config, "available_memory", lambda: 8 * 2**30)
    settings = config.Settings()
    assert settings.slots(gpu=False, kv_bytes=48 * 2**20) == 8  # SmolLM2 at 2,048: 8 fit
    assert settings.slots(gpu=False, kv_bytes=2**30) == 2  # a big model's cache: 2 of 1 GiB
    assert settings.slots(gpu=False, kv_bytes=16 * 2**30) == 1  # never none
    monkeypatch.setattr(config, "available_memory", lambda: None)
    assert settings.slots(gpu=False, kv_bytes=2**30) == 8  # unknown memory: the default


def test_threads_default_to_physical_cores() -> None:
    import os

    from llmserver import config

    cores = config.physical_cores()
    assert 1 <= cores <= len(os.sched_getaffinity(0))
    assert config.Settings().n_threads == cores
