"""The API fuzzer over llmserver: every operation of its OpenAPI schema, valid and invalid
requests, against the real process with SmolLM2. No 5xx, answers that match their schema,
and the same process, healthy, afterwards."""

from __future__ import annotations

import httpx
import pytest

from llmserver.config import Settings
from llmserver.main import create_app
from tests.utils.procs import ServiceProcess

from .fuzzing import fuzz, operations

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def first_pid(fuzz_llm: ServiceProcess) -> int | None:
    return fuzz_llm.pid


@pytest.mark.parametrize("operation", operations(create_app(Settings())))
def test_llmserver_api(fuzz_llm: ServiceProcess, first_pid: int | None,
                       operation: str) -> None:
    fuzz("llmserver", fuzz_llm.url, operation)


def test_llmserver_survived(fuzz_llm: ServiceProcess, first_pid: int | None) -> None:
    assert fuzz_llm.alive() and fuzz_llm.pid == first_pid
    health = httpx.get(fuzz_llm.url + "/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
