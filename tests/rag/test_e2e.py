"""End to end: a document uploaded to rag is the source the chatbot answers from.

Real processes: llmserver (SmolLM2), rag (embedded Qdrant), chatbot in front of both.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.chatbot.conftest import chat_events, conversation_of
from tests.utils.procs import ServiceProcess

from .docs import make_pdf

pytestmark = pytest.mark.slow
FACT = ("The Zephyr-9 telescope on Mount Corvina was completed in 2031. It observes "
        "in the far infrared and its mirror is eleven metres wide.")


@pytest.fixture(scope="module")
def stack(llm_server: ServiceProcess, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    data = tmp_path_factory.mktemp("rag-e2e")
    rag_env = {"RAG_DATA_DIR": str(data), "QDRANT_URL": "", "RAG_API_KEY": "rk"}
    with ServiceProcess("rag", "RAG_", env=rag_env, health_timeout=180) as rag:
        chat_env = {"CHATBOT_LLM_URLS": llm_server.url + "/v1", "CHATBOT_RAG_URL": rag.url,
                    "CHATBOT_RAG_API_KEY": "rk", "CHATBOT_TEMPERATURE": "0",
                    "CHATBOT_ANSWER_TOKENS": "48"}
        with ServiceProcess("chatbot", "CHATBOT_", env=chat_env) as chatbot:
            pdf = make_pdf(["Observatory notes.", FACT])
            reply = httpx.post(f"{rag.url}/collections/e2e/documents",
                               headers={"Authorization": "Bearer rk"},
                               files={"files": ("telescopes.pdf", pdf)}, timeout=120)
            assert reply.status_code == 200, reply.text
            yield rag, chatbot


def test_gateway_answer_names_the_uploaded_document(stack):
    _, chatbot = stack
    body = {"model": "smollm2-135m-instruct", "collection": "e2e", "max_tokens": 48,
            "messages": [{"role": "user", "content": "How wide is the Zephyr-9 mirror?"}]}
    reply = httpx.post(f"{chatbot.url}/v1/chat/completions", json=body, timeout=300)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["choices"][0]["message"]["content"].strip()
    sources = answer["sources"]
    assert sources and sources[0]["document"] == "telescopes.pdf"
    assert any("eleven metres" in (s.get("text") or s.get("snippet") or "") or s["page"] == 2
               for s in sources)


def test_browser_chat_api_streams_sources_of_the_document(stack):
    _, chatbot = stack
    with httpx.Client(base_url=chatbot.url, timeout=300) as client:
        events = chat_events(client, "When was the Zephyr-9 telescope completed?",
                             collection="e2e")
        sources = [data for name, data in events if name == "sources"]
        assert sources, [n for n, _ in events]
        assert sources[0]["sources"][0]["document"] == "telescopes.pdf"
        # The conversation keeps the sources with the answer.
        stored = client.get(f"/api/conversations/{conversation_of(events)}").json()
        assert stored["collection"] == "e2e"
        assert stored["messages"][-1]["sources"][0]["document"] == "telescopes.pdf"
