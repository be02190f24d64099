"""The API fuzzer over rag in embedded mode (the real embedding model): every operation of its
OpenAPI schema, valid and invalid requests. No 5xx, answers that match their schema, and the
same process, healthy, afterwards."""

from __future__ import annotations

import tempfile

import httpx
import pytest

from rag.config import Settings
from rag.main import create_app
from tests.utils.procs import ServiceProcess

from .fuzzing import fuzz, operations

pytestmark = pytest.mark.slow
OPERATIONS = operations(create_app(Settings(data_dir=tempfile.gettempdir())))


@pytest.fixture(scope="module")
def first_pid(fuzz_rag: ServiceProcess) -> int | None:
    # One collection with a document, so the routes that take a name find something too.
    reply = httpx.post(f"{fuzz_rag.url}/collections/a/documents", timeout=120,
                       files={"files": ("a.txt", b"Collection a holds this text.")})
    assert reply.status_code == 200, reply.text
    return fuzz_rag.pid


@pytest.mark.parametrize("operation", OPERATIONS)
def test_rag_api(fuzz_rag: ServiceProcess, first_pid: int | None, operation: str) -> None:
    fuzz("rag", fuzz_rag.url, operation)


def test_rag_survived(fuzz_rag: ServiceProcess, first_pid: int | None) -> None:
    assert fuzz_rag.alive() and fuzz_rag.pid == first_pid
    health = httpx.get(fuzz_rag.url + "/health", timeout=10)
    assert health.status_code == 200 and health.json()["status"] == "ok"
    # It still ingests and finds.
    reply = httpx.post(f"{fuzz_rag.url}/collections/after/documents", timeout=120,
                       files={"files": ("b.txt", b"The fuzzer left rag working.")})
    assert reply.status_code == 200, reply.text
    found = httpx.post(fuzz_rag.url + "/search", timeout=60,
                       json={"collection": "after", "query": "Is rag still working?"})
    assert found.status_code == 200, found.text
    assert "left rag working" in found.json()["results"][0]["text"]
