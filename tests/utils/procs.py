"""Tests start services with the shared process helper (also used by the benchmarks), and
wait on and look at processes with these.

Every service a test starts dies with the test session, however it ends:
- each runs in a process group of its own, and what is left in those groups (the service, or
  children it left behind) is killed when the session ends (`kill_process_groups`, from
  tests/conftest.py, which also turns SIGTERM into an interrupt so every fixture's finaliser
  stops its service first);
- the kernel kills each service when pytest itself dies, even by SIGKILL (PR_SET_PDEATHSIG).
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from tinyllm import procs
from tinyllm.procs import free_port

__all__ = ["ServiceProcess", "children", "free_port", "kill_process_groups", "running",
           "wait_for"]

# Run before the service's own program, in the child: ask for SIGKILL when the parent dies
# (prctl PR_SET_PDEATHSIG = 1), give up if it already has, then become the service (exec
# keeps the pid and the request).
_DIE_WITH_PARENT = """\
import ctypes, os, sys
ctypes.CDLL(None, use_errno=True).prctl(1, 9, 0, 0, 0)
if os.getppid() != int(sys.argv[1]):
    sys.exit(1)
os.execvp(sys.argv[2], sys.argv[2:])
"""

# The process groups the services of this session lead (a group's id is its leader's pid).
_groups: set[int] = set()


class ServiceProcess(procs.ServiceProcess):
    """tinyllm.procs.ServiceProcess as the tests run it: in its own process group (unless
    `new_session=False` is asked for), killed by the kernel if pytest dies, and stopped when
    it fails to become healthy rather than left running."""

    def __init__(self, *args, **kwargs) -> None:  # noqa: ANN002, ANN003
        kwargs.setdefault("new_session", True)
        super().__init__(*args, **kwargs)

    def start(self, wait: bool = True) -> ServiceProcess:
        command = self.command
        # The death signal follows the thread that forked: only the main thread lives as
        # long as pytest.
        if threading.current_thread() is threading.main_thread():
            self.command = [sys.executable, "-S", "-c", _DIE_WITH_PARENT, str(os.getpid()),
                            *command]
        try:
            super().start(wait=False)
        finally:
            self.command = command
        if self.new_session and self.pid is not None:
            _groups.add(self.pid)
        if wait:
            try:
                self.wait_healthy()
            except BaseException:
                self.stop()
                raise
        return self


def kill_process_groups() -> list[int]:
    """SIGKILL whatever still runs in the process groups of this session's services; the
    pids killed."""
    killed = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        stat = _stat(entry.name)
        # [state, ppid, pgrp, session, ...]: a group leader started by setsid leads its
        # session too, which a stranger reusing the number would not.
        if _alive(stat) and int(stat[2]) in _groups and stat[2] == stat[3]:
            try:
                os.kill(int(entry.name), signal.SIGKILL)
                killed.append(int(entry.name))
            except ProcessLookupError:
                pass
    return killed


def wait_for(check: Callable[[], bool], timeout: float = 60, what: str = "condition") -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise AssertionError(f"timed out waiting for {what}")


def _stat(pid: int | str) -> list[str]:
    """/proc/PID/stat after the command name: [state, ppid, ...]; [] once it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(") ", 1)[1].split()
    except (OSError, IndexError):
        return []


def _alive(stat: list[str]) -> bool:
    return bool(stat) and stat[0] != "Z"


def children(pid: int) -> list[int]:
    """The live processes whose parent is `pid`."""
    return [int(p.name) for p in Path("/proc").iterdir()
            if p.name.isdigit() and _alive(stat := _stat(p.name)) and stat[1] == str(pid)]


def running(pid: int) -> bool:
    """`pid` exists and is not a zombie."""
    return _alive(_stat(pid))
