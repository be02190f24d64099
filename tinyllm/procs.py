"""Run a service as a real process on a free loopback port; wait for /health; stop it.

Used by the tests and the benchmarks.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcess:
    """`python -m MODULE` with env overrides; use as a context manager.

    Args:
        module: the service package (llmserver, rag, chatbot).
        env: extra environment, e.g. {"LLMSERVER_MODELS_DIR": ...}.
        prefix: the service's env prefix; PORT and HOST are set under it.
        log_path: where stdout/stderr go (read it when a test fails).
    """

    def __init__(self, module: str, prefix: str, env: dict[str, str] | None = None,
                 log_path: Path | None = None, port: int | None = None,
                 health_timeout: float = 120) -> None:
        self.module = module
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.env = {**os.environ, f"{prefix}HOST": "127.0.0.1", f"{prefix}PORT": str(self.port),
                    **(env or {})}
        self.log_path = log_path or Path(f"/tmp/tinyllm-test-{module}-{self.port}.log")
        self.health_timeout = health_timeout
        self.proc: subprocess.Popen | None = None

    def start(self, wait: bool = True) -> ServiceProcess:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", self.module], env=self.env, cwd=REPO,
                                     stdout=log, stderr=subprocess.STDOUT)
        if wait:
            self.wait_healthy()
        return self

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.health_timeout
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"{self.module} exited early:\n{self.log()}")
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"{self.module} not healthy in {self.health_timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
