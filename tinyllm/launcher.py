"""`tinyllm up`: run the stack as processes on this host and stop it all on one Ctrl-C."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass

import httpx

log = logging.getLogger("tinyllm.up")


@dataclass(frozen=True)
class Service:
    name: str
    port_env: str
    default_port: int
    host_env: str

    def url(self) -> str:
        host = os.environ.get(self.host_env, "127.0.0.1")
        host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        return f"http://{host}:{os.environ.get(self.port_env, self.default_port)}"


# Start order: what a service calls starts before it.
SERVICES = [
    Service("llmserver", "LLMSERVER_PORT", 8000, "LLMSERVER_HOST"),
    Service("rag", "RAG_PORT", 8001, "RAG_HOST"),
    Service("chatbot", "CHATBOT_PORT", 5000, "CHATBOT_HOST"),
]


def available() -> list[Service]:
    """The services whose package is installed (`python -m NAME` would work)."""
    def runnable(name: str) -> bool:
        try:
            return importlib.util.find_spec(f"{name}.__main__") is not None
        except ModuleNotFoundError:  # the package itself is absent
            return False

    return [s for s in SERVICES if runnable(s.name)]


def wait_healthy(procs: dict[str, subprocess.Popen], timeout: float) -> bool:
    """Poll each /health until 200; False if a process dies or time runs out."""
    pending = {s.name: s for s in SERVICES if s.name in procs}
    deadline = time.monotonic() + timeout
    while pending and time.monotonic() < deadline:
        for name, svc in list(pending.items()):
            if procs[name].poll() is not None:
                log.error("%s exited with code %s", name, procs[name].returncode)
                return False
            try:
                if httpx.get(svc.url() + "/health", timeout=1).status_code == 200:
                    log.info("%s ready at %s", name, svc.url())
                    del pending[name]
            except httpx.HTTPError:
                pass
        time.sleep(0.3)
    return not pending


def stop(procs: dict[str, subprocess.Popen]) -> None:
    """SIGTERM every process, then SIGKILL whatever is still alive after 10 s."""
    for proc in procs.values():
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 10
    for proc in procs.values():
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="tinyllm up", description=__doc__)
    parser.add_argument("--only", action="append", choices=[s.name for s in SERVICES],
                        help="run only this service (repeatable)")
    parser.add_argument("--timeout", type=float, default=300,
                        help="seconds to wait for every service to become healthy")
    args = parser.parse_args(argv)
    from .logs import setup_logging

    setup_logging("info", "tinyllm")
    chosen = [s for s in available() if not args.only or s.name in args.only]
    if not chosen:
        log.error("no service to start")
        return 1
    procs: dict[str, subprocess.Popen] = {}
    interrupted = False

    def _on_signal(signum: int, _frame: object) -> None:
        nonlocal interrupted
        interrupted = True
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _on_signal)
    try:
        for svc in chosen:
            log.info("starting %s", svc.name)
            # Children ignore the terminal's Ctrl-C; we stop them in order ourselves.
            procs[svc.name] = subprocess.Popen([sys.executable, "-m", svc.name],
                                               start_new_session=True)
        if not wait_healthy(procs, args.timeout):
            log.error("the stack did not become healthy; stopping")
            return 1
        lines = [f"  {s.name:<10} {s.url()}" for s in chosen]
        # The user's answer, not a log line: always on stdout, whatever the log level.
        sys.stdout.write("TinyLLM is up:\n" + "\n".join(lines) + "\nPress Ctrl-C to stop.\n")
        sys.stdout.flush()
        while all(p.poll() is None for p in procs.values()):
            time.sleep(0.5)
        dead = [n for n, p in procs.items() if p.poll() is not None]
        log.error("%s exited; stopping the rest", ", ".join(dead))
        return 1
    except KeyboardInterrupt:
        log.info("stopping")
        return 0
    finally:
        stop(procs)
        if interrupted:
            log.info("stopped")
