"""`tinyllm doctor`'s eyes: what this machine has, looked at with timeouts, and llama.cpp
only ever in a child process (a build that faults on this CPU kills the child, not doctor).
Each function returns what it saw; `tinyllm/doctor_checks.py` judges it.
"""

from __future__ import annotations

import json
import platform
import shutil
import subprocess
from collections.abc import Callable
from pathlib import Path

import httpx

from .doctor_checks import DockerFacts, LlamaProbe, PortState
from .llamabuild import exit_reason

Run = Callable[[list[str], float], subprocess.CompletedProcess[str]]

IMPORT_TIMEOUT_S = 60  # importing llama_cpp: a second, unless the machine is swamped
TOOL_TIMEOUT_S = 15  # nvidia-smi, docker
HEALTH_TIMEOUT_S = 2
CPUINFO = Path("/proc/cpuinfo")
MEMINFO = Path("/proc/meminfo")

# The child that imports llama_cpp: its version and whether the build offloads to a GPU.
PROBE_CHILD = r"""
import json, llama_cpp
print(json.dumps({"version": llama_cpp.__version__,
                  "gpu_offload": bool(llama_cpp.llama_supports_gpu_offload())}))
"""


def run_command(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def _last_line(text: str) -> str:
    return (text.strip().splitlines() or [""])[-1][:200]


def probe_llama(python: str, run: Run = run_command) -> LlamaProbe:
    """Import llama_cpp in a child of `python`: a build that faults kills only the child."""
    try:
        done = run([python, "-c", PROBE_CHILD], IMPORT_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return LlamaProbe(error=f"hung for {IMPORT_TIMEOUT_S} s")
    except OSError as exc:
        return LlamaProbe(error=f"could not start {python}: {exc}")
    if done.returncode != 0:
        if "No module named 'llama_cpp'" in done.stderr:
            return LlamaProbe(installed=False, error="not installed")
        tail = _last_line(done.stderr)
        return LlamaProbe(error=exit_reason(done.returncode) + (f": {tail}" if tail else ""))
    try:
        seen = json.loads(_last_line(done.stdout))
        return LlamaProbe(version=str(seen["version"]), gpu_offload=bool(seen["gpu_offload"]))
    except (ValueError, KeyError, TypeError):
        return LlamaProbe(error=f"answered {_last_line(done.stdout)!r}, not its version")


def query_gpus(run: Run = run_command) -> tuple[list[str], str]:
    """The NVIDIA devices nvidia-smi lists, or ([], why none are)."""
    try:
        done = run(["nvidia-smi", "--query-gpu=name,driver_version,memory.total",
                    "--format=csv,noheader"], TOOL_TIMEOUT_S)
    except FileNotFoundError:
        return [], "no nvidia-smi"
    except subprocess.TimeoutExpired:
        return [], f"nvidia-smi hung for {TOOL_TIMEOUT_S} s"
    if done.returncode != 0:
        return [], f"nvidia-smi: {_last_line(done.stderr or done.stdout) or 'failed'}"
    gpus = []
    for line in done.stdout.splitlines():
        fields = [f.strip() for f in line.split(",")]
        if len(fields) == 3:
            gpus.append(f"{fields[0]} (driver {fields[1]}, {fields[2]})")
    return gpus, "" if gpus else "nvidia-smi lists no GPU"


def docker_facts(run: Run = run_command,
                 which: Callable[[str], str | None] = shutil.which) -> DockerFacts:
    compose = "docker-compose" if which("docker-compose") else ""
    if which("docker") is None:
        return DockerFacts(client=False, compose=compose)
    try:
        info = run(["docker", "info", "--format", "{{.ServerVersion}}"], TOOL_TIMEOUT_S)
        engine = info.stdout.strip() if info.returncode == 0 else ""
        error = "" if engine else \
            _last_line(info.stderr or info.stdout) or exit_reason(info.returncode)
    except subprocess.TimeoutExpired:
        engine, error = "", f"docker info hung for {TOOL_TIMEOUT_S} s"
    except OSError as exc:
        engine, error = "", str(exc)
    try:
        if run(["docker", "compose", "version"], TOOL_TIMEOUT_S).returncode == 0:
            compose = "docker compose"
    except (subprocess.TimeoutExpired, OSError):
        pass  # no working compose plugin
    return DockerFacts(client=True, engine=engine, engine_error=error, compose=compose)


def probe_port(url: str, timeout: float = HEALTH_TIMEOUT_S) -> PortState:
    """GET `url`/health: refused means free; anything but a JSON object, something else."""
    try:
        # trust_env=False: a proxy from the environment must not answer for loopback.
        answer = httpx.get(url + "/health", timeout=timeout, trust_env=False)
    except httpx.ConnectError:
        return PortState(listening=False)
    except httpx.HTTPError:
        return PortState(listening=True)
    try:
        body = answer.json()
    except ValueError:
        body = None
    return PortState(True, body if isinstance(body, dict) else None, answer.status_code)


def cpu_model(cpuinfo: Path = CPUINFO) -> str:
    try:
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


def mem_available(meminfo: Path = MEMINFO) -> int | None:
    """MemAvailable in bytes: what can be used without swapping."""
    try:
        for line in meminfo.read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def free_bytes(folder: Path) -> tuple[Path, int]:
    """Free space for `folder`, measured at its nearest existing parent."""
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    return folder, shutil.disk_usage(folder).free
