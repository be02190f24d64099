"""The chatbot's /v1/embeddings when rag is down (the session chatbot's rag is), and its key.
(With rag up, against rag's own answers: tests/services/test_embeddings.py.)"""

from __future__ import annotations

from pathlib import Path

import httpx
from fastapi.testclient import TestClient

from chatbot.config import Settings
from chatbot.main import create_app
from tests.utils.procs import ServiceProcess
from tests.utils.web import LOOPBACK_URL

BODY = {"model": "all-MiniLM-L6-v2", "input": ["a cat"]}


def test_rag_down_is_a_503_in_the_envelope(chatbot: ServiceProcess) -> None:
    response = httpx.post(chatbot.url + "/v1/embeddings", json=BODY, timeout=30)
    assert response.status_code == 503, response.text
    err = response.json()["error"]
    assert (err["type"], err["code"]) == ("service_unavailable", "upstream_unavailable")
    assert "rag" in err["message"] and response.headers["retry-after"]


def test_gateway_key_guards_embeddings(tmp_path: Path) -> None:
    settings = Settings(api_key="s3cret", database_url=f"sqlite:///{tmp_path}/c.db")
    client = TestClient(create_app(settings), base_url=LOOPBACK_URL)  # key checked first
    response = client.post("/v1/embeddings", json=BODY)
    assert response.status_code == 401
    assert response.json()["error"]["code"] == "missing_api_key"
