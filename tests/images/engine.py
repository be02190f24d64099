"""A docker engine for the image tests: found, or started (root), with niced builds.

Debian's docker.io (20.10) is what these machines have: its own client (/usr/bin/docker)
builds with BuildKit when DOCKER_BUILDKIT=1, and Debian's docker-compose (1.x) runs the stack.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

from services.config import REPO_ROOT

# Debian's client first: another `docker` earlier on PATH may lack the buildx plugin.
DOCKER = os.environ.get("DOCKER") or ("/usr/bin/docker" if Path("/usr/bin/docker").exists()
                                      else shutil.which("docker") or "docker")
DOCKERD_LOG = Path("/var/log/tinyllm-dockerd.log")
WHEELS = REPO_ROOT / "wheels"


def docker(*args: str, timeout: float = 120, check: bool = True, **kw: object
           ) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DOCKER_BUILDKIT": "1"}
    result = subprocess.run([DOCKER, *args], capture_output=True, text=True, timeout=timeout,
                            env=env, **kw)  # type: ignore[call-overload]
    if check and result.returncode != 0:
        raise AssertionError(f"docker {' '.join(args)}: {result.stderr[-3000:]}")
    return result


def engine_running() -> bool:
    try:
        return docker("info", timeout=20, check=False).returncode == 0
    except (FileNotFoundError, subprocess.TimeoutExpired):
        return False


def ensure_engine() -> str | None:
    """Start dockerd (as root, niced so builds leave the CPU to other work); None when up,
    else why not."""
    if engine_running():
        return None
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    if not Path(dockerd).exists():
        return "no docker engine (Debian's docker.io; scripts/setup.sh --test installs it)"
    if os.geteuid() != 0:
        return "dockerd is not running and starting it needs root"
    with DOCKERD_LOG.open("ab") as log:
        subprocess.Popen(["nice", "-n", "15", dockerd], stdout=log, stderr=log,
                         stdin=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        if engine_running():
            return None
        time.sleep(1)
    return f"dockerd did not start: see {DOCKERD_LOG}"


def ensure_base() -> None:
    """The stand-in python:3.11-slim-bookworm (debootstrap + docker import), made once."""
    subprocess.run(["bash", str(REPO_ROOT / "tests/images/standin_base.sh")], check=True,
                   env={**os.environ, "DOCKER": DOCKER}, timeout=900)


def lock_digest() -> str:
    return hashlib.sha256((REPO_ROOT / "requirements.lock").read_bytes()).hexdigest()


def ensure_wheelhouse() -> None:
    """wheels/ filled by scripts/wheelhouse.sh for the current lock (skipped when it is)."""
    stamp = WHEELS / ".lock.sha256"
    if stamp.exists() and stamp.read_text().strip() == lock_digest():
        return
    subprocess.run(["bash", str(REPO_ROOT / "scripts/wheelhouse.sh")], check=True,
                   env={**os.environ, "PYTHON": sys.executable}, timeout=2400)


def build(name: str, *args: str, tag: str = "0.1.0", timeout: float = 1500) -> None:
    """Build tinyllm/NAME:TAG (compose's tag by default) with no network at all: the
    wheelhouse or bust."""
    docker("build", "--network=none", "-f", f"{name}/Dockerfile", "-t",
           f"tinyllm/{name}:{tag}", *args, ".", cwd=REPO_ROOT, timeout=timeout)


def image_mb(tag: str) -> float:
    return int(docker("image", "inspect", "-f", "{{.Size}}", tag).stdout) / 1e6
