"""`tinyllm doctor` on this machine as a real process (llama.cpp loaded in its child, real
ports), and each verdict with the machine handed in where this one cannot show it."""

from __future__ import annotations

import json
import os
import platform
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import tomllib

from tinyllm import doctor, doctor_probes
from tinyllm import doctor_checks as checks
from tinyllm import llamabuild as lb
from tinyllm.doctor_checks import DockerFacts, Finding, LlamaProbe, PortState
from tinyllm.procs import REPO, free_port
from tinyllm.selfcheck import Check

GiB, MiB = 1 << 30, 1 << 20
LAYERS = "LLMSERVER_N_GPU_LAYERS"
LINE = re.compile(r"^(OK  |WARN|FAIL) [\w. ]+: |^     fix: ")


def run_doctor(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "tinyllm", "doctor", *args], cwd=REPO,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=300)


@contextmanager
def health_server(body: dict[str, object], code: int = 200) -> Iterator[int]:
    """A loopback HTTP server answering GET /health with `body`; yields its port."""

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            data = json.dumps(body).encode()
            self.send_response(code if self.path == "/health" else 404)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()


@contextmanager
def plain_listener() -> Iterator[int]:
    """A loopback socket that listens and never answers; yields its port."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(4)
        yield sock.getsockname()[1]


# -- the command on this machine -------------------------------------------------------------
@pytest.mark.skipif(shutil.which("nvidia-smi") is not None, reason="a CPU-only machine's report")
def test_the_report_on_this_machine() -> None:
    """llmserver's port held by a socket that never answers, rag's by a /health that says
    ok, the chatbot's free: one run shows all three."""
    chatbot = free_port()
    health = {"status": "ok", "service": "rag", "dependencies": {"embedder": "ok"}}
    with plain_listener() as taken, health_server(health) as rag:
        done = run_doctor(env={"LLMSERVER_PORT": str(taken), "RAG_PORT": str(rag),
                               "CHATBOT_PORT": str(chatbot), LAYERS: "0",
                               "LLMSERVER_HOST": "", "RAG_HOST": "", "CHATBOT_HOST": ""})
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert all(LINE.match(line) for line in lines), lines
    by_name = {line.split(":", 1)[0][5:]: line for line in lines if not line.startswith(" ")}
    assert list(by_name) == ["python", "llama.cpp", "cpu", "gpu", "memory", "disk",
                             "port llmserver", "port rag", "port chatbot", "docker"]
    assert by_name["python"] == f"OK   python: Python {platform.python_version()}"
    marker = lb.read_marker(sys.prefix)
    assert marker is not None, "scripts/setup.sh records the llama.cpp build"
    assert by_name["llama.cpp"] == (
        f"OK   llama.cpp: llama-cpp-python {lb.locked_version()}, built by setup as "
        f"{checks.recorded_build(marker)}; decodes SmolLM2 on "
        f"{checks.system_summary(str(marker['system_info']))}")
    assert " CPU: " in by_name["llama.cpp"] and "AVX2" in by_name["llama.cpp"]
    assert by_name["cpu"].startswith("OK   cpu: ")
    assert f"{len(os.sched_getaffinity(0))} core" in by_name["cpu"]
    assert by_name["gpu"] == "OK   gpu: no GPU: running on CPU (no nvidia-smi)"
    assert by_name["memory"].startswith("OK   memory: ")
    assert "largest model smollm2-135m-instruct (" in by_name["memory"]
    assert by_name["port llmserver"] == \
        f"WARN port llmserver: 127.0.0.1:{taken} is taken by something else"
    fix = lines[lines.index(by_name["port llmserver"]) + 1]
    assert fix == "     fix: stop what listens there, or set LLMSERVER_PORT to a free port " \
                  "(environment or .env)"
    assert by_name["port rag"] == f"OK   port rag: rag runs on 127.0.0.1:{rag}: ok"
    assert by_name["port chatbot"] == f"OK   port chatbot: 127.0.0.1:{chatbot} is free"
    assert by_name["docker"].split()[0] in ("OK", "WARN")  # docker is optional


def test_a_build_that_dies_on_load_fails_with_its_signal(dying_lib: Path) -> None:
    done = run_doctor("--json", env={"LLAMA_CPP_LIB_PATH": str(dying_lib)})
    assert done.returncode == 1, done.stdout + done.stderr
    found = json.loads(done.stdout)
    assert all(set(item) == {"name", "status", "detail", "fix"} for item in found)
    llama = next(item for item in found if item["name"] == "llama.cpp")
    assert llama == {"name": "llama.cpp", "status": "FAIL", "detail": "import llama_cpp died of "
                     "SIGILL", "fix": "run scripts/setup.sh (it rebuilds llama.cpp portable "
                     "when a build dies)"}
    assert [item["name"] for item in found if item["status"] == "FAIL"] == ["llama.cpp"]
    assert found[0] == {"name": "python", "status": "OK",
                        "detail": f"Python {platform.python_version()}", "fix": ""}


# -- verdicts, with the machine handed in ----------------------------------------------------
def test_python_below_the_required_version_fails() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["requires-python"] == ">=3.10"
    assert checks.MIN_PYTHON == (3, 10)
    old = checks.python_version((3, 9, 18))
    assert (old.status, old.detail) == ("FAIL", "Python 3.9.18: TinyLLM needs 3.10 or newer")
    assert checks.python_version((3, 10, 0)) == Finding("python", "OK", "Python 3.10.0")


def test_a_model_larger_than_free_memory_is_named() -> None:
    models = {"smollm2-135m-instruct": 94 * MiB, "big-7b": 4 * GiB}
    tight = checks.memory(3 * GiB, models, "LLMSERVER_DEFAULT_MODEL")
    assert tight == Finding("memory", "WARN", "3.0 GiB available; too large to load here: "
                            "big-7b (4.0 GiB)", "free memory, or serve a smaller model "
                            "(LLMSERVER_DEFAULT_MODEL names the one loaded at start)")
    # 80% of free memory is the line: 4 GiB of 5 GiB is just within it.
    assert checks.memory(5 * GiB, models, "X").status == "OK"
    roomy = checks.memory(16 * GiB, models, "X")
    assert roomy == Finding("memory", "OK", "16.0 GiB available; largest model big-7b (4.0 GiB)")
    assert checks.memory(16 * GiB, {}, "X").status == "WARN"


@pytest.mark.parametrize(("free", "status"), [(100 * MiB, "FAIL"), (199 * MiB, "FAIL"),
                                              (200 * MiB, "WARN"), (GiB, "WARN"),
                                              (2 * GiB, "OK"), (50 * GiB, "OK")])
def test_disk_thresholds(free: int, status: str) -> None:
    found = checks.disk(Path("/data"), free)
    assert found.status == status
    assert found.detail == f"{checks.size(free)} free under /data"
    assert (found.fix == "") == (status == "OK")


def fake_smi(stdout: str = "", rc: int = 0, missing: bool = False) -> doctor_probes.Run:
    def run(cmd: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        assert cmd[0] == "nvidia-smi" and timeout == doctor_probes.TOOL_TIMEOUT_S
        if missing:
            raise FileNotFoundError(cmd[0])
        return subprocess.CompletedProcess(cmd, rc, stdout, "")

    return run


H100 = "NVIDIA H100 80GB HBM3, 550.54.15, 81559 MiB\n"


def test_gpu_seen_but_the_build_cannot_offload_warns() -> None:
    gpus, why = doctor_probes.query_gpus(fake_smi(H100))
    assert gpus == ["NVIDIA H100 80GB HBM3 (driver 550.54.15, 81559 MiB)"] and why == ""
    found = checks.gpu(False, gpus, why, LAYERS, -1)
    assert found.status == "WARN"
    assert found.detail == "NVIDIA H100 80GB HBM3 (driver 550.54.15, 81559 MiB), but llama.cpp " \
                           "is a CPU-only build: nothing runs on it"
    assert found.fix == f"install {checks.CUDA_BUILD}"
    assert checks.gpu(True, gpus, why, LAYERS, -1).status == "OK"


def test_gpu_layers_without_an_offloading_build_warn() -> None:
    assert doctor_probes.query_gpus(fake_smi(missing=True)) == ([], "no nvidia-smi")
    assert doctor_probes.query_gpus(fake_smi(rc=9)) == ([], "nvidia-smi: failed")
    found = checks.gpu(False, [], "no nvidia-smi", LAYERS, -1)
    assert (found.status, found.detail) == (
        "WARN", f"{LAYERS}=-1 but llama.cpp is a CPU-only build: every layer runs on the CPU")
    assert found.fix.startswith(f"set {LAYERS}=0, or on a GPU host install ")
    assert checks.gpu(False, [], "no nvidia-smi", LAYERS, 0) == \
        Finding("gpu", "OK", "no GPU: running on CPU (no nvidia-smi)")


def test_amx_advertised_but_not_usable_is_said() -> None:
    flags = {"avx2", "avx512f", "avx512cd", "avx512vl", "avx512dq", "avx512bw", "amx_tile",
             "amx_int8"}
    found = checks.cpu("Xeon", 4, flags, amx=False, x86=True)
    assert found == Finding("cpu", "OK", "Xeon, 4 cores; llama.cpp can use AVX2, AVX-512; AMX "
                            "advertised but not usable: left out of the build")
    assert checks.cpu("Xeon", 4, flags, amx=True, x86=True).detail == \
        "Xeon, 4 cores; llama.cpp can use AVX2, AVX-512, AMX"


@pytest.mark.parametrize(("body", "code", "status", "detail"), [
    ({"status": "unavailable", "service": "llmserver", "dependencies": {"model": "loading"}},
     503, "OK", "llmserver runs on {address}: loading"),
    ({"status": "unavailable", "service": "llmserver", "dependencies": {"model": "failed"}},
     503, "OK", "llmserver runs on {address}: down (model: failed)"),
    ({"status": "ok", "service": "rag", "dependencies": {}}, 200, "WARN",
     "{address} is taken by TinyLLM's rag"),
    ({"hello": "world"}, 200, "WARN", "{address} is taken by something else"),
])
def test_port_verdicts_from_a_real_health_answer(body: dict[str, object], code: int,
                                                 status: str, detail: str) -> None:
    with health_server(body, code) as port:
        address = f"127.0.0.1:{port}"
        found = checks.port("llmserver", "LLMSERVER_PORT", address,
                            doctor_probes.probe_port(f"http://{address}"))
    assert (found.status, found.detail) == (status, detail.format(address=address))
    free = free_port()
    assert doctor_probes.probe_port(f"http://127.0.0.1:{free}") == PortState(listening=False)


def test_docker_is_only_ever_a_warning() -> None:
    absent = checks.docker(DockerFacts(client=False))
    assert absent.status == "WARN" and absent.fix.startswith(checks.DOCKER_OPTIONAL)
    stopped = checks.docker(DockerFacts(client=True, engine_error="Cannot connect",
                                        compose="docker compose"))
    assert stopped == Finding("docker", "WARN", "docker client; no engine answers (Cannot "
                              "connect)", f"{checks.DOCKER_OPTIONAL}; for the container stack "
                              "start the Docker engine (sudo systemctl start docker)")
    assert checks.docker(DockerFacts(True, "27.1.1", "", "docker compose")) == \
        Finding("docker", "OK", "engine 27.1.1; docker compose")


def test_llama_verdicts_on_what_the_children_saw() -> None:
    ok = Check(True, "CPU : SSE3 = 1 | AVX2 = 1 | AVX512 = 0 | OPENMP = 1 |")
    marker: dict[str, object] = {"version": "0.3.36", "target": "portable",
                                 "features": ["GGML_AVX", "GGML_AVX2"]}
    probe = LlamaProbe(version="0.3.36", gpu_offload=False)
    assert checks.llama_build(probe, ok, marker, "0.3.36") == Finding(
        "llama.cpp", "OK", "llama-cpp-python 0.3.36, built by setup as portable (AVX, AVX2); "
        "decodes SmolLM2 on CPU: SSE3 AVX2 OPENMP")
    unmarked = checks.llama_build(probe, ok, None, "0.3.36")
    assert unmarked.status == "WARN" and unmarked.detail.endswith(
        "built outside setup: its flags are unknown")
    died = checks.llama_build(probe, Check(False, "died of SIGSEGV"), marker, "0.3.36")
    assert (died.status, died.fix) == ("FAIL", checks.SETUP_REBUILD)
    missing = checks.llama_build(LlamaProbe(installed=False, error="not installed"), None,
                                 None, "0.3.36")
    assert missing == Finding("llama.cpp", "FAIL", "llama-cpp-python is not installed",
                              "run scripts/setup.sh")


def test_an_invalid_setting_fails_naming_its_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLMSERVER_PORT", "abc")
    llm = doctor.service("llmserver")
    found = doctor.guarded("port llmserver", lambda: doctor.check_port(llm))
    assert found == Finding("port llmserver", "FAIL", "invalid setting LLMSERVER_PORT='abc': "
                            "Input should be a valid integer, unable to parse string as an "
                            "integer", "correct it in the environment or .env")


def test_fix_lines_follow_warnings_and_failures_only() -> None:
    assert doctor.render(Finding("disk", "FAIL", "1 MiB free under /d", "free space")) == \
        "FAIL disk: 1 MiB free under /d\n     fix: free space\n"
    assert doctor.render(Finding("disk", "OK", "9 GiB free under /d")) == \
        "OK   disk: 9 GiB free under /d\n"
