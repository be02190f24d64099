"""The same operations through embedded Qdrant and a Qdrant server give the same results.

The server side runs where one is reachable (QDRANT_URL set in the test environment);
embedded mode is also checked against itself across a restart (state read back from disk).
"""

from __future__ import annotations

import os
import uuid
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from rag.main import create_app
from tests.utils.web import LOOPBACK_URL

from .docs import CORPUS, QUESTIONS, make_docx, make_pdf
from .helpers import make_settings, upload, wait_ready

QDRANT_URL = os.environ.get("QDRANT_URL", "")


def operations(client: TestClient, name: str) -> None:
    """Create, upload every format, re-upload, replace and delete, as a user would."""
    assert client.post("/collections", json={"name": name}).status_code == 201
    files = [(n, t.encode()) for n, t in CORPUS.items()]
    files += [("book.pdf", make_pdf(["Owls hunt at night.", CORPUS["tides.txt"]])),
              ("memo.docx", make_docx(["The budget meeting moved to Friday."]))]
    assert upload(client, name, *files).status_code == 200
    assert upload(client, name, files[0]).json()["documents"][0]["status"] == "unchanged"
    replaced = upload(client, name, ("bread.md", b"Rye bread needs a longer proof."))
    assert replaced.json()["documents"][0]["status"] == "replaced"
    python_id = next(d["id"] for d in client.get(f"/collections/{name}/documents").json()["data"]
                     if d["name"] == "python.md")
    assert client.delete(f"/collections/{name}/documents/{python_id}").status_code == 200


def observe(client: TestClient, name: str) -> dict[str, Any]:
    """Everything a user can see afterwards, with scores rounded past float noise."""
    info = client.get(f"/collections/{name}").json()
    docs = sorted((d["id"], d["name"], d["chunks"], d["bytes"])
                  for d in client.get(f"/collections/{name}/documents").json()["data"])
    searches = []
    for question, _ in QUESTIONS + [("rye bread proof", ""), ("owls at night", "")]:
        for spec in (None, {"page": 2}, {"document": ["tides.txt", "book.pdf"]}):
            body = {"query": question, "collections": [name], "k": 4, "filter": spec}
            hits = client.post("/search", json=body).json()["results"]
            searches.append([(round(h["score"], 4), h["document"], h["page"], h["start"],
                              h["end"], h["chunk_index"]) for h in hits])
    return {"points": info["points"], "documents": info["documents"], "docs": docs,
            "model": (info["embedding_model"], info["vector_size"]), "searches": searches}


def run(settings: Any, embedder: Any, name: str) -> dict[str, Any]:
    with TestClient(create_app(settings, embedder), base_url=LOOPBACK_URL) as client:
        wait_ready(client)
        operations(client, name)
        seen = observe(client, name)
    return seen


@pytest.fixture(scope="module")
def embedded(tmp_path_factory: pytest.TempPathFactory, embedder: Any) -> dict[str, Any]:
    settings = make_settings(tmp_path_factory.mktemp("congruence"))
    return {"settings": settings, "seen": run(settings, embedder, "congruence")}


def test_embedded_results_survive_a_restart(embedded, embedder):
    seen = embedded["seen"]
    assert seen["docs"] and "python.md" not in [d[1] for d in seen["docs"]]
    assert any(hits for hits in seen["searches"])
    with TestClient(create_app(embedded["settings"], embedder), base_url=LOOPBACK_URL) as client:
        wait_ready(client)
        assert observe(client, "congruence") == seen


@pytest.mark.skipif(not QDRANT_URL, reason="no Qdrant server reachable: set QDRANT_URL to run "
                                           "the embedded-vs-server congruence test")
def test_server_gives_the_same_results_as_embedded(embedded, embedder, tmp_path):
    try:
        httpx.get(QDRANT_URL.rstrip("/") + "/readyz", timeout=3)
    except httpx.HTTPError as exc:
        pytest.skip(f"QDRANT_URL={QDRANT_URL} is not reachable: {exc}")
    name = f"congruence-{uuid.uuid4().hex[:8]}"
    settings = make_settings(tmp_path, qdrant_url=QDRANT_URL)
    try:
        seen = run(settings, embedder, name)
    finally:
        with TestClient(create_app(settings, embedder), base_url=LOOPBACK_URL) as client:
            client.delete(f"/collections/{name}")
    assert seen == embedded["seen"]
