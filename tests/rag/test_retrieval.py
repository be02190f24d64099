"""Hybrid retrieval on real documentation (Debian's git-doc): it must beat dense alone."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from rag.main import create_app
from tests.utils.web import LOOPBACK_URL

from . import gitdocs
from .helpers import make_settings, wait_ready

# 67 real pages, ~1,600 chunks to embed: minutes on a busy 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def scores(tmp_path_factory, embedder):
    if not gitdocs.available():
        pytest.fail(f"the {gitdocs.PACKAGE} Debian package is missing: run "
                    "scripts/setup.sh --test")
    settings = make_settings(tmp_path_factory.mktemp("git"), max_upload_bytes=50_000_000)
    with TestClient(create_app(settings, embedder), base_url=LOOPBACK_URL) as client:
        wait_ready(client)
        response = client.post("/collections/git/documents",
                               files=[("files", doc) for doc in gitdocs.load()])
        assert response.status_code == 200, response.text
        assert len(response.json()["documents"]) == len(gitdocs.DOCUMENTS) >= 40

        def search(query: str, mode: str, k: int) -> list[dict]:
            reply = client.post("/search", json={"query": query, "collection": "git", "k": k,
                                                 "mode": mode})
            assert reply.status_code == 200, reply.text
            assert reply.json()["mode"] == mode
            return reply.json()["results"]

        hits = search("--autosquash fixup! squash! commits", "hybrid", 10)
        yield gitdocs.evaluate(search), hits


def test_labelled_set_is_big_enough():
    assert len(gitdocs.QUESTIONS) >= 30 and len(gitdocs.DOCUMENTS) >= 40
    assert {doc for _, doc in gitdocs.QUESTIONS} <= set(gitdocs.DOCUMENTS)


def test_hybrid_beats_dense_on_recall_at_1_and_mrr(scores):
    result, _ = scores
    assert result["hybrid"]["recall@1"] > result["dense"]["recall@1"], result
    assert result["hybrid"]["mrr"] > result["dense"]["mrr"], result
    assert result["hybrid"]["recall@3"] >= result["dense"]["recall@3"], result
    assert result["sparse"]["recall@3"] > 0.4, result


def test_sources_carry_title_and_section(scores):
    _, hits = scores
    rebase = [h for h in hits if h["document"] == "git-rebase.html"]
    assert rebase, [h["document"] for h in hits]
    assert all(h["title"] == "git-rebase(1)" for h in rebase)
    assert all(h["section"].startswith("git-rebase(1) Manual Page > ") for h in rebase)
