"""Every command's --help works, and the `tinyllm` entry point is the one pyproject installs."""

from __future__ import annotations

import subprocess
import sys

import pytest
import tomllib

from tinyllm.cli import COMMANDS
from tinyllm.procs import REPO


def run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *args], capture_output=True, text=True, cwd=REPO,
                          timeout=120)


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_every_tinyllm_command_has_help(command: str) -> None:
    result = run("-m", "tinyllm", command, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: tinyllm {command}"), result.stdout[:200]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("service", ["llmserver", "chatbot", "rag"])
def test_every_service_has_help_and_refuses_arguments(service: str) -> None:
    result = run("-m", service, "--help")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"usage: python -m {service}")
    assert f"{service.upper()}_PORT" in result.stdout
    if service == "llmserver":  # takes llama_cpp.server's flags; a mistyped one is an error
        bad = run("-m", service, "--n_gpu_layer", "1")
        assert bad.returncode == 2 and "unrecognized arguments: --n_gpu_layer" in bad.stderr
        return
    bad = run("-m", service, "--port", "1")  # would otherwise start a server on the default
    assert bad.returncode == 2 and "unexpected argument '--port'" in bad.stderr


def test_trainer_help() -> None:
    result = run("-m", "trainer", "--help")
    assert result.returncode == 0 and "5%% of" not in result.stdout
    assert "5% of --iters" in result.stdout and "--vocab-model" in result.stdout


def test_tinyllm_lists_commands_and_refuses_unknown_ones() -> None:
    result = run("-m", "tinyllm", "--help")
    assert result.returncode == 0
    for command in COMMANDS:
        assert f"  {command} " in result.stdout
    bare = run("-m", "tinyllm")
    assert bare.returncode == 2 and "usage: tinyllm COMMAND" in bare.stdout
    bad = run("-m", "tinyllm", "fly")
    assert bad.returncode == 2 and "unknown command 'fly'" in bad.stderr


def test_installed_script_points_at_the_cli() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["scripts"]["tinyllm"] == "tinyllm.cli:main"
    assert "tinyllm*" in project["tool"]["setuptools"]["packages"]["find"]["include"]
