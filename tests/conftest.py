"""Fixtures shared by every service's tests; the session's clean-up when interrupted; the
browser tests' skip."""

from __future__ import annotations

import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.utils.browser import require_browser
from tests.utils.procs import ServiceProcess, kill_process_groups

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
_previous_handler = pytest.StashKey[Any]()


def _interrupted(signum: int, frame: Any) -> None:
    """SIGTERM as Ctrl-C: pytest stops and runs every finaliser, which stops its services.
    A second SIGTERM does not wait for them: it kills what runs and exits."""
    signal.signal(signal.SIGTERM, _terminated)
    raise KeyboardInterrupt(f"{signal.Signals(signum).name} received")


def _terminated(signum: int, frame: Any) -> None:
    kill_process_groups()
    os._exit(128 + signum)


def pytest_configure(config: pytest.Config) -> None:
    config.stash[_previous_handler] = signal.signal(signal.SIGTERM, _interrupted)


def pytest_unconfigure(config: pytest.Config) -> None:
    # After every finaliser: whatever a service left in its process group.
    kill_process_groups()
    signal.signal(signal.SIGTERM, config.stash.get(_previous_handler, signal.SIG_DFL))


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Only the tests marked `browser` need Playwright and Chromium (skipped without them,
    failed under CI)."""
    if item.get_closest_marker("browser") is not None:
        require_browser()


@pytest.fixture(scope="session")
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty models folder for the session's llmserver (tests drop GGUFs into it)."""
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def llm_server(models_dir: Path) -> Iterator[ServiceProcess]:
    """A real llmserver process with SmolLM2, 2 slots and a queue bound of 1, on a free
    loopback port."""
    # Flash attention off: the golden answers are Llama's, token for token.
    env = {"LLMSERVER_MODELS_DIR": str(models_dir), "LLMSERVER_QUEUE_SIZE": "1",
           "LLMSERVER_PARALLEL": "2", "LLMSERVER_N_CTX": "2048", "LLMSERVER_FLASH_ATTN": "off"}
    with ServiceProcess("llmserver", "LLMSERVER_", env=env) as proc:
        yield proc
