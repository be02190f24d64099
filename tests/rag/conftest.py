"""Fixtures of the rag tests: one embedder for the session, apps on temporary stores."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient

from rag.embedder import Embedder
from rag.main import create_app
from tests.utils.web import LOOPBACK_URL

from .helpers import ONNX_CACHE, make_settings, wait_ready

# Every rag process the tests start shares one export of the query encoder.
os.environ.setdefault("RAG_ONNX_CACHE_DIR", str(ONNX_CACHE))


@pytest.fixture(scope="session")
def embedder() -> Embedder:
    return Embedder(onnx_cache=ONNX_CACHE)


@pytest.fixture(scope="session")
def client(tmp_path_factory: pytest.TempPathFactory, embedder: Embedder
           ) -> Iterator[TestClient]:
    """One embedded-mode app for the tests that only need a working service."""
    settings = make_settings(tmp_path_factory.mktemp("rag"))
    with TestClient(create_app(settings, embedder), base_url=LOOPBACK_URL) as c:
        wait_ready(c)
        yield c


@pytest.fixture
def collection() -> str:
    """A fresh collection name per test, so tests sharing the app do not meet."""
    return f"t-{uuid.uuid4().hex[:10]}"
