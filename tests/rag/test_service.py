"""Auth, health and dependency failures of the rag app (apps built side by side)."""

from __future__ import annotations

import time

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from rag.main import create_app
from tests.utils.procs import free_port
from tests.utils.web import LOOPBACK_URL

from .helpers import assert_error, make_settings, upload, wait_ready


def test_api_key_guards_everything_but_health(tmp_path, embedder):
    settings = make_settings(tmp_path, api_key="s3cret")
    with TestClient(create_app(settings, embedder), base_url=LOOPBACK_URL) as client:
        wait_ready(client)
        assert client.get("/health").status_code == 200
        for method, path in [("get", "/collections"), ("post", "/search"),
                             ("post", "/v1/embeddings"), ("get", "/jobs/x"),
                             ("get", "/metrics"), ("get", "/collections/a/documents")]:
            assert_error(getattr(client, method)(path), 401, "missing_api_key",
                         "authentication_error")
        assert_error(client.get("/collections", headers={"Authorization": "Bearer nope"}), 401,
                     "invalid_api_key")
        ok = {"Authorization": "Bearer s3cret"}
        assert client.get("/collections", headers=ok).status_code == 200
        response = client.post("/collections/k/documents", headers=ok,
                               files=[("files", ("a.txt", b"keyed text"))])
        assert response.status_code == 200, response.text


def test_embedder_that_fails_to_load_reports_503(tmp_path):
    settings = make_settings(tmp_path, embedding_model=tmp_path / "no-such-model")
    with TestClient(create_app(settings), base_url=LOOPBACK_URL) as client:
        for _ in range(200):
            body = client.get("/health").json()
            if body["dependencies"]["embedder"] != "loading":
                break
        response = client.get("/health")
        assert response.status_code == 503 and response.headers["retry-after"]
        assert response.json()["dependencies"] == {"embedder": "failed", "qdrant": "ok"}
        err = assert_error(client.post("/search", json={"query": "x", "collections": ["a"]}),
                           503, "embedder_failed", "service_unavailable")
        assert err["message"]
        assert_error(upload(client, "a", ("a.txt", b"text")), 503, "embedder_failed")
        # What does not need the model still works.
        assert client.get("/collections").json() == {"data": []}


def test_qdrant_server_down_is_503(tmp_path, embedder):
    url = f"http://127.0.0.1:{free_port()}"
    settings = make_settings(tmp_path, qdrant_url=url)
    with TestClient(create_app(settings, embedder), base_url=LOOPBACK_URL) as client:
        response = client.get("/health")
        assert response.status_code == 503
        assert response.json()["dependencies"]["qdrant"] == "down"
        assert_error(client.get("/collections"), 503, "upstream_unavailable",
                     "service_unavailable")
        assert_error(client.post("/search", json={"query": "x", "collections": ["a"]}), 503,
                     "upstream_unavailable")


def samples(client) -> dict[tuple[str, tuple], float]:
    """/metrics as {(sample name, sorted labels): value}."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(client.get("/metrics").text)
            for s in family.samples}


def test_metrics_count_requests_chunks_and_searches(client, collection):
    # The app is shared by the session: compare with what it counted before.
    before = samples(client)
    listed = ("http_requests_total",
              (("method", "GET"), ("route", "/collections"), ("status", "200")))
    searched = ("http_requests_total",
                (("method", "POST"), ("route", "/search"), ("status", "200")))
    count, total = ("rag_search_seconds_count", ()), ("rag_search_seconds_sum", ())
    client.get("/collections")
    upload(client, collection, ("m.txt", b"Metrics count this chunk."))
    start = time.perf_counter()
    for query in ("metrics", "chunk", "count this"):
        response = client.post("/search", json={"query": query, "collections": [collection]})
        assert response.status_code == 200, response.text
    took = time.perf_counter() - start
    after = samples(client)
    assert after[listed] - before.get(listed, 0) == 1
    assert after[searched] - before.get(searched, 0) == 3
    assert after[("rag_chunks_ingested_total", (("collection", collection),))] == 1
    assert after[count] - before[count] == 3  # one observation per search, no more
    # Seconds, not milliseconds: the three searches took at most the time measured around them.
    assert 0 < after[total] - before[total] <= took


@pytest.mark.parametrize("env,expected", [({}, None), ({"QDRANT_URL": "http://q:6333"},
                                                        "http://q:6333")])
def test_qdrant_url_setting_has_no_prefix(monkeypatch, env, expected):
    from rag.config import Settings

    monkeypatch.delenv("QDRANT_URL", raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("RAG_CHUNK_TOKENS", "128")
    settings = Settings()
    assert settings.qdrant_url == expected and settings.chunk_tokens == 128
