"""Tests start services with the shared process helper (also used by the benchmarks), and
wait on and look at processes with these."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

from tinyllm.procs import ServiceProcess, free_port

__all__ = ["ServiceProcess", "children", "free_port", "running", "wait_for"]


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
