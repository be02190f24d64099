"""Run a service as a real process (`python -m NAME`), watch its /health, stop it.

The one process helper of the launcher (`tinyllm up`), the tests and the benchmarks.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO

import httpx

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def describe_exit(code: int | None) -> str:
    """A returncode in words: 'exited with code 1', 'killed by SIGKILL (...)'."""
    if code is None:
        return "running"
    if code < 0:
        name = signal.Signals(-code).name
        hint = " (out of memory, or killed by hand)" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}"
    return f"exited with code {code}"


class ServiceProcess:
    """`python -m MODULE` with env overrides; use as a context manager.

    Args:
        module: the service package (llmserver, rag, chatbot).
        prefix: the service's env prefix; PORT and HOST are set under it.
        env: extra environment (settings of the service under its prefix).
        log_path: where stdout/stderr go (read it when a test fails); None: a file in the
            temp folder (`tempfile.gettempdir()`).
        port: the port to bind; default a free loopback port.
        health_timeout: seconds `wait_healthy` waits.
        host: the address to bind; a wildcard is probed on loopback.
        inherit_output: write to this process's stdout/stderr instead of log_path.
        new_session: own process group, so the terminal's Ctrl-C reaches only the parent.
        command: a program to run instead of `python -m MODULE` (MODULE then only names it);
            it must read its port and host from the environment under `prefix`.
    """

    def __init__(self, module: str, prefix: str, env: dict[str, str] | None = None,
                 log_path: Path | None = None, port: int | None = None,
                 health_timeout: float = 120, host: str = "127.0.0.1",
                 inherit_output: bool = False, new_session: bool = False,
                 command: list[str] | None = None) -> None:
        self.module = module
        self.command = command or [sys.executable, "-m", module]
        self.port = port or free_port()
        probe = "127.0.0.1" if host in ("0.0.0.0", "::", "") else host
        self.url = f"http://{probe}:{self.port}"
        self.env = {**os.environ, f"{prefix}HOST": host, f"{prefix}PORT": str(self.port),
                    **(env or {})}
        self.log_path = log_path or Path(tempfile.gettempdir()) / \
            f"tinyllm-test-{module}-{self.port}.log"
        self.health_timeout = health_timeout
        self.inherit_output = inherit_output
        self.new_session = new_session
        self.proc: subprocess.Popen | None = None
        self._log_file: IO[bytes] | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    @property
    def returncode(self) -> int | None:
        return self.proc.poll() if self.proc is not None else None

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self, wait: bool = True) -> ServiceProcess:
        output: IO[bytes] | None = None
        if not self.inherit_output:
            self._close_log()
            self._log_file = output = open(self.log_path, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(self.command, env=self.env, cwd=REPO,
                                     stdout=output, stderr=subprocess.STDOUT if output else None,
                                     start_new_session=self.new_session)
        if wait:
            try:
                self.wait_healthy()
            except BaseException:  # never left running when it did not come up
                self.stop()
                raise
        return self

    def healthy(self) -> bool:
        """One probe of /health: True on 200."""
        try:
            return httpx.get(self.url + "/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + self.health_timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.module} {describe_exit(self.returncode)} early:\n"
                                   f"{self.log()}")
            if self.healthy():
                return
            time.sleep(0.2)
        raise TimeoutError(f"{self.module} not healthy in {self.health_timeout}s:\n{self.log()}")

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-4000:]
        except OSError:
            return ""

    def terminate(self) -> None:
        """Ask it to stop (SIGTERM) without waiting; see `stop`."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM, then SIGKILL if it is still running after `timeout` seconds."""
        if self.alive():
            assert self.proc is not None
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close_log()

    def kill(self) -> None:
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait()
        self._close_log()

    def _close_log(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def stop_all(procs: list[ServiceProcess], timeout: float = 10) -> None:
    """SIGTERM every process at once, then wait; SIGKILL what outlives `timeout`."""
    for proc in procs:
        proc.terminate()
    deadline = time.monotonic() + timeout
    for proc in procs:
        proc.stop(timeout=max(0.1, deadline - time.monotonic()))
