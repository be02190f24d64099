"""The API fuzzer over the chatbot (one-person mode, in front of the fuzzer's llmserver and
rag): every operation of its OpenAPI schema, valid and invalid requests. No 5xx, answers that
match their schema, and the same process, healthy, afterwards."""

from __future__ import annotations

import tempfile

import httpx
import pytest

from chatbot.config import Settings
from chatbot.main import create_app
from tests.utils.procs import ServiceProcess

from .fuzzing import fuzz, operations

pytestmark = pytest.mark.slow
OPERATIONS = operations(create_app(Settings(
    auth="none", database_url=f"sqlite:///{tempfile.gettempdir()}/unused.db")))


@pytest.fixture(scope="module")
def first_pid(fuzz_chatbot: ServiceProcess) -> int | None:
    return fuzz_chatbot.pid


@pytest.mark.parametrize("operation", OPERATIONS)
def test_chatbot_api(fuzz_chatbot: ServiceProcess, first_pid: int | None,
                     operation: str) -> None:
    fuzz("chatbot", fuzz_chatbot.url, operation)


def test_chatbot_survived(fuzz_chatbot: ServiceProcess, first_pid: int | None) -> None:
    assert fuzz_chatbot.alive() and fuzz_chatbot.pid == first_pid
    assert httpx.get(fuzz_chatbot.url + "/health", timeout=10).status_code == 200
    answer = httpx.post(fuzz_chatbot.url + "/v1/chat/completions", timeout=120,
                        json={"messages": [{"role": "user", "content": "Say hi"}],
                              "max_tokens": 8})
    assert answer.status_code == 200, answer.text
    assert answer.json()["choices"][0]["message"]["content"]
