"""Fixtures shared by every service's tests; the browser tests' skip."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.utils.browser import require_browser
from tests.utils.procs import ServiceProcess

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"


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
