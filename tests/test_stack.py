"""The stack as a whole: compose file, .env.example, the CLI and the launcher."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time

import httpx
import pytest
import yaml

from services.config import REPO_ROOT
from tests.utils.procs import free_port
from tinyllm import envdoc
from tinyllm.catalog import http_services

COMPOSE_FILES = (["docker-compose.yml"], ["docker-compose.yml", "docker-compose.gpu.yml"])


@pytest.mark.parametrize("files", COMPOSE_FILES, ids=["cpu", "gpu"])
def test_compose_file_is_valid(files: list[str]) -> None:
    compose = shutil.which("docker-compose")
    assert compose, "Debian's docker-compose is installed by scripts/setup.sh --test"
    args = [arg for name in files for arg in ("-f", name)]
    for profile in ([], ["--profile", "train"]):
        result = subprocess.run([compose, *args, *profile, "config", "-q"], cwd=REPO_ROOT,
                                capture_output=True, text=True, env={**os.environ,
                                                                     "COMPOSE_FILE": ""})
        assert result.returncode == 0, result.stderr


def test_compose_follows_the_house_rules() -> None:
    spec = yaml.safe_load((REPO_ROOT / "docker-compose.yml").read_text())
    for name, service in spec["services"].items():
        if "image" in service and "build" not in service:
            assert ":" in service["image"] and not service["image"].endswith(":latest"), name
        if service.get("profiles"):
            continue  # batch jobs have no health to check
        assert "healthcheck" in service, f"{name} has no healthcheck"
        assert service["healthcheck"]["test"][0] == "CMD", f"{name}: exec-form healthcheck"
        for dep in (service.get("depends_on") or {}).values():
            assert dep["condition"] == "service_healthy"
        # The default file runs anywhere: a GPU reservation fails on a host without the toolkit.
        assert "deploy" not in service, f"{name}: GPU reservations go in docker-compose.gpu.yml"
        # Listening on 0.0.0.0, a service would answer any Host name (DNS rebinding) unless
        # compose names the ones it publishes.
        env = service.get("environment") or {}
        if env.get(f"{name.upper()}_HOST") == "0.0.0.0":
            default = env[f"{name.upper()}_ALLOWED_HOSTS"].split(":-", 1)[1].rstrip("}")
            assert "127.0.0.1" in default.split(",") and "*" not in default, name


def test_compose_gpu_file_reserves_the_card() -> None:
    spec = yaml.safe_load((REPO_ROOT / "docker-compose.gpu.yml").read_text())
    assert spec["services"]["llmserver"]["build"]["target"] == "cuda"
    for name in ("llmserver", "trainer"):
        gpu = spec["services"][name]["deploy"]["resources"]["reservations"]["devices"][0]
        assert gpu["driver"] == "nvidia" and gpu["capabilities"] == ["gpu"]
        # docker-compose 1.x refuses a count given as a string (an interpolated variable).
        assert gpu["count"] == 1 or gpu["count"] == "all", name


def test_env_example_is_current() -> None:
    assert (REPO_ROOT / ".env.example").read_text() == envdoc.render(), \
        "regenerate: python -m tinyllm.envdoc > .env.example"


def test_cli_lists_commands() -> None:
    result = subprocess.run([sys.executable, "-m", "tinyllm", "--help"],
                            capture_output=True, text=True)
    assert result.returncode == 0
    for command in ("up", "chat", "ingest", "train", "bench"):
        assert f"  {command} " in result.stdout
    bad = subprocess.run([sys.executable, "-m", "tinyllm", "fly"], capture_output=True,
                         text=True)
    assert bad.returncode == 2 and "unknown command" in bad.stderr


def test_up_starts_llmserver_and_ctrl_c_stops_it(tmp_path) -> None:
    port = free_port()
    env = {**os.environ, "LLMSERVER_PORT": str(port), "LLMSERVER_MODELS_DIR": str(tmp_path)}
    proc = subprocess.Popen([sys.executable, "-m", "tinyllm", "up", "--only", "llmserver"],
                            env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        lines = []
        for line in proc.stdout:  # type: ignore[union-attr]
            lines.append(line)
            if "Press Ctrl-C to stop" in line or time.monotonic() > deadline:
                break
        assert any(f"http://127.0.0.1:{port}" in line for line in lines), "".join(lines)
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/completions", timeout=30,
                           json={"prompt": "Hello", "max_tokens": 2})
        assert reply.status_code == 200
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)
    finally:
        if proc.poll() is None:
            proc.kill()


def test_launcher_knows_every_service() -> None:
    assert [s.name for s in http_services()] == ["llmserver", "rag", "chatbot"]
