"""Chatbot fixtures: real chatbot processes in front of the session's real llmserver."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.utils.procs import ServiceProcess, free_port

DEAD_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens: rag (or llmserver) down


def chatbot_env(llm_url: str, **extra: str) -> dict[str, str]:
    env = {"CHATBOT_LLM_URLS": llm_url + "/v1", "CHATBOT_RAG_URL": DEAD_URL,
           "CHATBOT_TEMPERATURE": "0", "CHATBOT_ANSWER_TOKENS": "64",
           "CHATBOT_RETRY_DOWN_S": "1"}
    env.update(extra)
    return env


@pytest.fixture(scope="session")
def chatbot(llm_server: ServiceProcess) -> Iterator[ServiceProcess]:
    """A chatbot whose rag is down (answers without documents) and queue bound 8."""
    with ServiceProcess("chatbot", "CHATBOT_", env=chatbot_env(
            llm_server.url, CHATBOT_QUEUE_SIZE="8")) as proc:
        yield proc


def chat_events(client: httpx.Client, message: str, **body: Any) -> list[tuple[str, Any]]:
    """POST /api/chat and collect its SSE events as (name, data)."""
    events: list[tuple[str, Any]] = []
    with client.stream("POST", "/api/chat", json={"message": message, **body}) as response:
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
