"""Idempotency, replacement, deletion, all-or-nothing, jobs, chunk bounds, model mismatch."""

from __future__ import annotations

import base64
import time

import pytest
from fastapi.testclient import TestClient
from qdrant_client.http import models as qm

from rag.chunking import chunk_text
from tests.utils.web import LOOPBACK_URL

from .docs import long_text
from .helpers import assert_error, upload


def points(client, collection: str) -> int:
    return client.get(f"/collections/{collection}").json()["points"]


def texts(client, collection: str, query: str, k: int = 20) -> list[str]:
    body = {"query": query, "collections": [collection], "k": k}
    return [h["text"] for h in client.post("/search", json=body).json()["results"]]


def test_same_bytes_twice_add_nothing(client, collection):
    data = long_text(12).encode()
    first = upload(client, collection, ("doc.txt", data)).json()["documents"][0]
    assert first["status"] == "added" and first["chunks"] > 1
    assert points(client, collection) == first["chunks"]
    again = upload(client, collection, ("doc.txt", data)).json()["documents"][0]
    assert again["status"] == "unchanged" and again["id"] == first["id"]
    assert points(client, collection) == first["chunks"]
    listed = client.get(f"/collections/{collection}/documents").json()["data"]
    assert [(d["id"], d["name"], d["chunks"], d["bytes"]) for d in listed] == \
        [(first["id"], "doc.txt", first["chunks"], len(data))]
    assert listed[0]["uploaded_at"].endswith("+00:00")


def test_new_version_replaces_the_old_without_stale_chunks(client, collection):
    upload(client, collection, ("facts.txt", long_text(10, seed=1).encode() +
                                b"\n\nThe secret password is swordfish."))
    assert any("swordfish" in t for t in texts(client, collection, "secret password"))
    new = upload(client, collection, ("facts.txt", b"The secret password is now marlin."))
    row = new.json()["documents"][0]
    assert row["status"] == "replaced" and row["chunks"] == 1
    assert points(client, collection) == 1
    found = texts(client, collection, "secret password")
    assert found == ["The secret password is now marlin."]


def test_delete_document_and_collection(client, collection):
    keep = upload(client, collection, ("keep.txt", b"Keep the lighthouse log.")).json()
    gone = upload(client, collection, ("gone.txt", b"Forget the submarine map.")).json()
    doc_id = gone["documents"][0]["id"]
    assert client.delete(f"/collections/{collection}/documents/{doc_id}").status_code == 200
    names = [d["name"] for d in client.get(f"/collections/{collection}/documents").json()["data"]]
    assert names == ["keep.txt"]
    assert not any("submarine" in t for t in texts(client, collection, "submarine map"))
    assert points(client, collection) == keep["documents"][0]["chunks"]
    assert_error(client.delete(f"/collections/{collection}/documents/{doc_id}"), 404,
                 "document_not_found")
    assert client.delete(f"/collections/{collection}").status_code == 200
    assert collection not in [c["name"] for c in client.get("/collections").json()["data"]]
    assert_error(client.post("/search", json={"query": "x", "collections": [collection]}), 404,
                 "collection_not_found")


def test_failure_halfway_leaves_nothing_searchable(client, collection, monkeypatch):
    old = b"The treasure is buried under the old oak tree."
    upload(client, collection, ("map.txt", old))
    embedder = client.app.state.embedder
    real = embedder.encode
    calls = {"n": 0}

    def flaky(batch):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("injected embedder fault")
        return real(batch)

    monkeypatch.setattr(embedder, "encode", flaky)
    monkeypatch.setattr(client.app.state.ingestor, "group", 4)
    data = ("The treasure moved to the lighthouse cellar. " + long_text(40)).encode()
    # A second client on the same app, answering crashes with the envelope as in production.
    plain = TestClient(client.app, raise_server_exceptions=False, base_url=LOOPBACK_URL)
    assert_error(upload(plain, collection, ("map.txt", data)), 500, "internal_error",
                 "server_error")
    monkeypatch.setattr(embedder, "encode", real)
    assert calls["n"] == 2
    # The half-written new version is gone; the old one stays whole and searchable.
    assert points(client, collection) == 1
    assert texts(client, collection, "where is the treasure") == [old.decode()]
    docs = client.get(f"/collections/{collection}/documents").json()["data"]
    assert [d["bytes"] for d in docs] == [len(old)]


def test_a_document_being_written_is_not_searchable(client, collection, monkeypatch):
    monkeypatch.setattr(client.app.state.ingestor, "group", 4)
    upload(client, collection, ("other.txt", b"Zebras have striped coats."))
    data = ("Alpacas hum when they are content. " + long_text(30)).encode()
    job = upload(client, collection, ("alpaca.txt", data), background="true").json()["job"]
    deadline = time.monotonic() + 120
    while job["progress"] == 0 and job["status"] != "failed":
        assert time.monotonic() < deadline, job
        time.sleep(0.02)
        job = client.get(f"/jobs/{job['id']}").json()
    assert job["status"] == "running" and 0 < job["progress"] < 1, job
    assert points(client, collection) > 1
    assert not any("Alpacas" in t for t in texts(client, collection, "alpacas hum"))
    names = [d["name"] for d in client.get(f"/collections/{collection}/documents").json()["data"]]
    assert names == ["other.txt"]
    while job["status"] == "running":
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
        job = client.get(f"/jobs/{job['id']}").json()
    assert job["status"] == "done", job
    assert any("Alpacas" in t for t in texts(client, collection, "alpacas hum"))


def test_leftover_incomplete_points_are_cleaned_up(client, collection):
    upload(client, collection, ("a.txt", b"Alpacas hum when they are content."))
    store = client.app.state.store
    with store.locked() as c:
        c.set_payload(collection, {"complete": False},
                      points=qm.Filter(must=[qm.FieldCondition(
                          key="document", match=qm.MatchValue(value="a.txt"))]))
    assert client.get(f"/collections/{collection}/documents").json()["data"] == []
    assert store.cleanup_incomplete(None) >= 1
    assert points(client, collection) == 0


def test_background_job_reports_progress_and_documents(client, collection, monkeypatch):
    monkeypatch.setattr(client.app.state.ingestor, "group", 8)
    response = upload(client, collection, ("big.txt", long_text(60).encode()),
                      ("small.md", b"# Note\n\nBackground jobs finish."), background="true")
    assert response.status_code == 202, response.text
    job = response.json()["job"]
    assert job["status"] in ("queued", "running") and 0 <= job["progress"] <= 1
    seen = []
    deadline = time.monotonic() + 120
    while job["status"] not in ("done", "failed"):
        assert time.monotonic() < deadline
        time.sleep(0.1)
        job = client.get(f"/jobs/{job['id']}").json()
        seen.append(job["progress"])
    assert job["status"] == "done" and job["error"] is None and job["progress"] == 1.0
    assert seen == sorted(seen)
    assert [d["name"] for d in job["documents"]] == ["big.txt", "small.md"]
    total = sum(d["chunks"] for d in job["documents"])
    assert points(client, collection) == total


def test_background_job_failure_is_in_the_job(client, collection):
    response = upload(client, collection, ("x.bin", b"\x00\x01\x02"), background="true")
    assert response.status_code == 202
    job_id = response.json()["job"]["id"]
    deadline = time.monotonic() + 60
    while (job := client.get(f"/jobs/{job_id}").json())["status"] in ("queued", "running"):
        assert time.monotonic() < deadline, job
        time.sleep(0.05)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "unsupported_media_type"
    assert set(job["error"]) == {"message", "type", "param", "code"}


def test_chunks_fit_the_model_and_overlap(embedder):
    text = long_text(30)
    chunks = chunk_text(text, embedder.tokenizer, 10_000, 32)
    assert len(chunks) == 1  # the caller caps the size; chunking honours what it is given
    size = embedder.max_chunk_tokens
    chunks = chunk_text(text, embedder.tokenizer, size, 32)
    assert len(chunks) > 3
    for c in chunks:
        assert c.text == text[c.start:c.end]
        n = len(embedder.tokenizer.encode(c.text, add_special_tokens=True).ids)
        assert n <= embedder.max_seq_length
    for a, b in zip(chunks, chunks[1:], strict=False):
        assert b.start < a.end  # overlapping windows
    assert chunks[-1].end == len(text.rstrip())


def test_ingestor_caps_chunk_size_at_the_model_maximum(client):
    ingestor = client.app.state.ingestor
    assert ingestor.chunk_tokens <= client.app.state.embedder.max_seq_length - 2


def test_mismatched_collection_is_refused(client, collection):
    store = client.app.state.store
    with store.locked() as c:
        c.create_collection(collection, vectors_config=qm.VectorParams(
            size=8, distance=qm.Distance.COSINE), metadata={"embedding_model": "other-model",
                                                             "vector_size": 8})
    err = assert_error(upload(client, collection, ("a.txt", b"some text")), 409,
                       "embedding_model_mismatch", "conflict_error")
    assert "other-model" in err["message"]
    assert_error(client.post("/search", json={"query": "x", "collections": [collection]}), 409,
                 "embedding_model_mismatch")
    assert_error(client.post("/collections", json={"name": collection}), 409,
                 "embedding_model_mismatch")


@pytest.mark.parametrize("encoding", ["float", "base64"])
def test_embeddings_through_the_openai_sdk(client, encoding):
    import numpy as np
    from openai import OpenAI

    sdk = OpenAI(base_url=str(client.base_url) + "/v1", api_key="unused", http_client=client)
    result = sdk.embeddings.create(model="all-MiniLM-L6-v2", input=["a cat", "a kitten"],
                                   encoding_format=encoding)
    # Asked for base64 explicitly, the SDK hands the string back undecoded.
    vectors = [np.frombuffer(base64.b64decode(d.embedding), dtype=np.float32)
               if isinstance(d.embedding, str) else np.asarray(d.embedding, dtype=np.float32)
               for d in result.data]
    assert [len(v) for v in vectors] == [384, 384]
    assert abs(float(np.linalg.norm(vectors[0])) - 1) < 1e-3
    assert float(vectors[0] @ vectors[1]) > 0.5
    assert result.usage.prompt_tokens > 0


def test_collections_create_is_idempotent(client, collection):
    first = client.post("/collections", json={"name": collection})
    assert first.status_code == 201
    assert first.json() == {"name": collection, "embedding_model": "all-MiniLM-L6-v2",
                            "vector_size": 384, "documents": 0, "points": 0, "schema": 2}
    assert client.post("/collections", json={"name": collection}).status_code == 200
    listed = {c["name"]: c for c in client.get("/collections").json()["data"]}
    assert listed[collection]["vector_size"] == 384
