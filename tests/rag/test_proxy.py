"""Names with '?', '#' or '%' reach rag intact through the chatbot's documents proxy."""

from __future__ import annotations

from urllib.parse import quote

import httpx
import pytest
from fastapi.testclient import TestClient

from chatbot.config import Settings as ChatSettings
from chatbot.main import create_app as chat_app
from tests.utils.procs import ServiceProcess, free_port

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def rag_url(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("proxy")
    with ServiceProcess("rag", "RAG_", env={"RAG_DATA_DIR": str(tmp), "QDRANT_URL": "",
                                            "RAG_API_KEY": ""},
                        log_path=tmp / "rag.log", health_timeout=180) as proc:
        # A collection named like the prefix of the hostile names below.
        reply = httpx.post(f"{proc.url}/collections/a/documents", timeout=120,
                           files={"files": ("a.txt", b"Collection a holds this text.")})
        assert reply.status_code == 200, reply.text
        yield proc.url


@pytest.mark.parametrize("name,code", [
    ("a?b", "invalid_collection_name"), ("a#b", "invalid_collection_name"),
    ("a%b", "invalid_collection_name"), ("50%", "invalid_collection_name"),
    # A slash never becomes a path: the chatbot itself finds no such route.
    ("a/../a", "not_found"),
])
def test_hostile_names_round_trip_to_rag(rag_url, name, code):
    settings = ChatSettings(rag_url=rag_url, llm_urls=f"http://127.0.0.1:{free_port()}/v1",
                            api_key=None)
    # The chatbot accepts loopback Host names only (CHATBOT_ALLOWED_HOSTS).
    with TestClient(chat_app(settings), base_url="http://127.0.0.1") as chat:
        path = "/api/collections/" + quote(name, safe="")
        listed = chat.get(path + "/documents")
        # rag saw the whole name (and refused it), never collection "a" with a query string.
        assert listed.json()["error"]["code"] == code, listed.text
        assert listed.status_code == (400 if code == "invalid_collection_name" else 404)
        deleted = chat.delete(path)
        assert deleted.json()["error"]["code"] == code, deleted.text
    docs = httpx.get(f"{rag_url}/collections/a/documents", timeout=10).json()["data"]
    assert [d["name"] for d in docs] == ["a.txt"]
