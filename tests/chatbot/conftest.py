"""Chatbot fixtures: real chatbot processes in front of the session's real llmserver, each on
a database of its own; a PostgreSQL server; a scripted OpenAI-compatible upstream."""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.chatbot.pg import pg_bin, postgres_server, reset
from tests.utils.procs import ServiceProcess, free_port

PASSWORD = "correct horse battery"


def dead_url() -> str:
    """A loopback URL nothing listens on (rag, or llmserver, down)."""
    return f"http://127.0.0.1:{free_port()}"


def chatbot_env(llm_url: str, **extra: str) -> dict[str, str]:
    """Settings of a test chatbot; a fresh SQLite database unless CHATBOT_DATABASE_URL is given."""
    env = {"CHATBOT_LLM_URLS": llm_url + "/v1", "CHATBOT_RAG_URL": dead_url(),
           "CHATBOT_TEMPERATURE": "0", "CHATBOT_ANSWER_TOKENS": "64",
           "CHATBOT_RETRY_DOWN_S": "1",
           "CHATBOT_DATABASE_URL": f"sqlite:///{tempfile.mkdtemp(prefix='chatbot-db-')}/c.db"}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def chatbot(llm_server: ServiceProcess) -> Iterator[ServiceProcess]:
    """A one-person chatbot (auth none) whose rag is down, queue bound 8."""
    with ServiceProcess("chatbot", "CHATBOT_", env=chatbot_env(
            llm_server.url, CHATBOT_QUEUE_SIZE="8")) as proc:
        yield proc


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """One PostgreSQL server for the session (Debian's package; scripts/setup.sh --test)."""
    if pg_bin() is None:
        pytest.fail("PostgreSQL is not installed: run scripts/setup.sh --test")
    with postgres_server() as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:  # noqa: ANN001
    """An empty database of each backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/chatbot.db"
    url = request.getfixturevalue("pg_server")
    reset(url)
    return url


def login(client: httpx.Client, username: str, password: str = PASSWORD,
          route: str = "login") -> None:
    r = client.post(f"/api/auth/{route}", json={"username": username, "password": password})
    assert r.status_code == 200, r.text
    assert "tinyllm_login" in client.cookies


def chat_events(client: httpx.Client, message: str | None = None,
                **body: Any) -> list[tuple[str, Any]]:
    """POST /api/chat and collect its SSE events as (name, data)."""
    events: list[tuple[str, Any]] = []
    payload = {**({"message": message} if message is not None else {}), **body}
    with client.stream("POST", "/api/chat", json=payload) as response:
        assert response.status_code == 200, response.read()
        name = "message"
        for line in response.iter_lines():
            if line.startswith("event:"):
                name = line[6:].strip()
            elif line.startswith("data:"):
                events.append((name, json.loads(line[5:].strip())))
    return events


def answer_of(events: list[tuple[str, Any]]) -> str:
    return "".join(data["text"] for name, data in events if name == "token")


def conversation_of(events: list[tuple[str, Any]]) -> str:
    return next(data["id"] for name, data in events if name == "conversation")
