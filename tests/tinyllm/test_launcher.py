"""`tinyllm up`: the whole stack comes up, a killed service comes back, one Ctrl-C stops all."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.utils.procs import free_port
from tinyllm.procs import REPO

SERVICES = ("llmserver", "rag", "chatbot")


class Launcher:
    """`python -m tinyllm up ...` with its output (and its children's) in a file."""

    def __init__(self, args: list[str], env: dict[str, str], log: Path) -> None:
        self.log_path = log
        self.proc = subprocess.Popen([sys.executable, "-m", "tinyllm", "up", *args],
                                     env={**os.environ, **env}, cwd=REPO,
                                     stdout=open(log, "wb"), stderr=subprocess.STDOUT)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_for(self, pattern: str, timeout: float, after: int = 0) -> re.Match:
        """The first match of `pattern` in the output past offset `after`."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = re.compile(pattern).search(self.output(), after)
            if match:
                return match
            if self.proc.poll() is not None:
                break
            time.sleep(0.3)
        raise AssertionError(f"no /{pattern}/ in {timeout}s:\n{self.output()[-4000:]}")

    def pid_of(self, service: str, after: int = 0) -> tuple[int, int]:
        match = self.wait_for(rf"started {service} \(pid (\d+)\)", 30, after)
        return int(match.group(1)), match.end()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Launcher, dict]]:
    tmp = tmp_path_factory.mktemp("up")
    ports = {name: free_port() for name in SERVICES}
    env = {"LLMSERVER_PORT": str(ports["llmserver"]), "LLMSERVER_MODELS_DIR": str(tmp),
           "RAG_PORT": str(ports["rag"]), "RAG_DATA_DIR": str(tmp / "rag"), "QDRANT_URL": "",
           "CHATBOT_PORT": str(ports["chatbot"]), "TINYLLM_DATA_DIR": str(tmp),
           "CHATBOT_LLM_URLS": f"http://127.0.0.1:{ports['llmserver']}/v1",
           "CHATBOT_RAG_URL": f"http://127.0.0.1:{ports['rag']}"}
    launcher = Launcher([], env, tmp / "up.log")
    try:
        yield launcher, ports
    finally:
        if launcher.proc.poll() is None:
            launcher.proc.send_signal(signal.SIGINT)
            try:
                launcher.proc.wait(30)
            except subprocess.TimeoutExpired:
                launcher.proc.kill()


def test_up_starts_all_three_and_each_answers(stack: tuple[Launcher, dict]) -> None:
    launcher, ports = stack
    launcher.wait_for("Press Ctrl-C to stop", 300)
    for name, port in ports.items():
        assert f"{name:<10} http://127.0.0.1:{port}" in launcher.output()
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    reply = httpx.post(f"http://127.0.0.1:{ports['chatbot']}/v1/chat/completions", timeout=60,
                       json={"messages": [{"role": "user", "content": "Hi"}], "max_tokens": 3})
    assert reply.status_code == 200, reply.text  # chatbot -> llmserver through the stack
    search = httpx.post(f"http://127.0.0.1:{ports['rag']}/v1/embeddings", timeout=60,
                        json={"input": "hello"})
    assert search.status_code == 200 and len(search.json()["data"][0]["embedding"]) == 384


def test_a_killed_service_is_restarted(stack: tuple[Launcher, dict]) -> None:
    launcher, ports = stack
    launcher.wait_for("Press Ctrl-C to stop", 300)
    pid, _ = launcher.pid_of("llmserver")
    mark = len(launcher.output())
    os.kill(pid, signal.SIGKILL)  # what the kernel's out-of-memory killer does
    launcher.wait_for(r"llmserver killed by SIGKILL .*restarting in 1 s", 30, mark)
    new_pid, end = launcher.pid_of("llmserver", mark)
    assert new_pid != pid
    launcher.wait_for("llmserver ready at", 120, end)
    url = f"http://127.0.0.1:{ports['llmserver']}"
    assert httpx.get(url + "/health", timeout=5).status_code == 200
    reply = httpx.post(url + "/v1/completions", json={"prompt": "Hi", "max_tokens": 2},
                       timeout=60)
    assert reply.status_code == 200
    assert launcher.proc.poll() is None, "the launcher keeps the others up meanwhile"
    for name in ("rag", "chatbot"):
        assert httpx.get(f"http://127.0.0.1:{ports[name]}/health", timeout=5).status_code == 200


def test_one_ctrl_c_stops_everything(stack: tuple[Launcher, dict]) -> None:
    launcher, ports = stack
    launcher.wait_for("Press Ctrl-C to stop", 300)
    launcher.proc.send_signal(signal.SIGINT)
    assert launcher.proc.wait(timeout=60) == 0
    for port in ports.values():
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_a_service_that_keeps_dying_at_start_stops_the_launcher(tmp_path: Path) -> None:
    with socket.socket() as taken:  # the port is held: every start fails to bind
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        launcher = Launcher(["--only", "chatbot", "--max-start-failures", "2"],
                            {"CHATBOT_PORT": str(port), "TINYLLM_DATA_DIR": str(tmp_path)},
                            tmp_path / "up.log")
        try:
            assert launcher.proc.wait(timeout=120) == 1
        finally:
            if launcher.proc.poll() is None:
                launcher.proc.kill()
    out = launcher.output()
    assert re.search(r"chatbot exited with code \d+ before it was ready; restarting in 1 s", out)
    assert "chatbot keeps dying at start (2 times in a row" in out
    assert out.count("started chatbot (pid") == 2
