"""RAG_EMBEDDING_BACKEND=onnx: exported offline from the packaged model, runs without torch."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from fastapi.testclient import TestClient

from rag.embedder import Embedder, packaged_model_dir
from rag.main import create_app
from rag.onnx_backend import OnnxEncoder, export
from tests.utils.web import LOOPBACK_URL

from .docs import CORPUS, QUESTIONS
from .helpers import make_settings, upload, wait_ready

pytestmark = pytest.mark.slow
TEXTS = list(CORPUS.values()) + [q for q, _ in QUESTIONS]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    out = tmp_path_factory.mktemp("onnx")
    int8 = export(packaged_model_dir(), out)
    return {"fp32": out / "model.onnx", "int8": int8}


def test_exported_vectors_match_torch(exported, embedder):
    reference = embedder.encode(TEXTS)
    fp32 = OnnxEncoder(embedder.path, exported["fp32"]).encode(TEXTS)
    int8 = OnnxEncoder(embedder.path, exported["int8"]).encode(TEXTS)
    assert fp32.shape == int8.shape == reference.shape
    assert np.allclose(np.linalg.norm(int8, axis=1), 1, atol=1e-4)
    cos32 = (fp32 * reference).sum(axis=1)
    cos8 = (int8 * reference).sum(axis=1)
    assert cos32.min() > 0.9999, cos32.min()
    assert cos8.mean() > 0.98 and cos8.min() > 0.95, (cos8.mean(), cos8.min())


def test_onnx_runs_without_torch(exported):
    code = ("import sys; from pathlib import Path; from rag.embedder import packaged_model_dir;"
            "from rag.onnx_backend import OnnxEncoder;"
            f"e = OnnxEncoder(packaged_model_dir(), Path({str(exported['int8'])!r}));"
            "v = e.encode(['a cat', 'a kitten']); print(float(v[0] @ v[1]));"
            "assert 'torch' not in sys.modules and 'sentence_transformers' not in sys.modules")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert float(done.stdout) > 0.5


def test_service_with_the_onnx_backend(exported, tmp_path):
    settings = make_settings(tmp_path, embedding_backend="onnx",
                             embedding_onnx_file=exported["int8"])
    with TestClient(create_app(settings), base_url=LOOPBACK_URL) as client:
        wait_ready(client, timeout=120)
        embedder: Embedder = client.app.state.embedder
        assert embedder.backend == "onnx" and embedder.model is None
        assert upload(client, "onnx", *[(n, t.encode()) for n, t in CORPUS.items()]
                      ).status_code == 200
        found = 0
        for question, expected in QUESTIONS:
            hits = client.post("/search", json={"query": question, "collection": "onnx",
                                                "k": 3}).json()["results"]
            found += expected in [h["document"] for h in hits]
        assert found / len(QUESTIONS) >= 0.9
