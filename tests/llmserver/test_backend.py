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
    assert offload.slots(gpu=False) == 4  # a CUDA build on a machine with no GPU
    assert Settings(n_gpu_layers=0).slots(gpu=True) == 4
    assert Settings(n_gpu_layers=-1, parallel=8).slots(gpu=False) == 8
    assert backend.has_gpu() is False  # no GPU on these machines
