"""End to end: of the documents uploaded to rag, the one a question is about is the first
source the chatbot answers from.

Real processes: llmserver (SmolLM2), rag (embedded Qdrant), chatbot in front of both.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from tests.chatbot.conftest import chat_events, conversation_of
from tests.utils.procs import ServiceProcess

from .docs import make_docx, make_pdf

pytestmark = pytest.mark.slow
# Three documents on three topics, so the top source has to be the right one.
FACT = ("The Zephyr-9 telescope on Mount Corvina was completed in 2031. It observes "
        "in the far infrared and its mirror is eleven metres wide.")
BREAD = ("The Halden rye loaf rises for fourteen hours in a cold cellar before it is baked "
         "in a stone oven at 230 degrees.")
FERRY = ("The ferry Marisol crosses Lake Dunmore twice a day, carrying forty cars, the mail "
         "and a brass band on Sundays.")


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
            files = [("files", ("telescopes.pdf", make_pdf(["Observatory notes.", FACT]))),
                     ("files", ("bakery.docx", make_docx(["Bakery notes.", BREAD]))),
                     ("files", ("ferries.txt", ("Timetables.\n\n" + FERRY).encode()))]
            reply = httpx.post(f"{rag.url}/collections/e2e/documents",
                               headers={"Authorization": "Bearer rk"}, files=files, timeout=120)
            assert reply.status_code == 200, reply.text
            assert [d["status"] for d in reply.json()["documents"]] == ["added"] * 3
            yield rag, chatbot


def test_gateway_answer_names_the_uploaded_document(stack):
    _, chatbot = stack
    body = {"model": "smollm2-135m-instruct", "collection": "e2e", "max_tokens": 48,
            "messages": [{"role": "user", "content": "How wide is the Zephyr-9 mirror?"}]}
    reply = httpx.post(f"{chatbot.url}/v1/chat/completions", json=body, timeout=300)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["choices"][0]["message"]["content"].strip()
    top = answer["sources"][0]
    assert top["document"] == "telescopes.pdf", answer["sources"]
    assert "mirror is eleven metres wide" in top["snippet"], top


def test_browser_chat_api_streams_sources_of_the_document(stack):
    _, chatbot = stack
    with httpx.Client(base_url=chatbot.url, timeout=300) as client:
        events = chat_events(client, "How long does the Halden rye loaf rise?",
                             collection="e2e")
        sources = [data for name, data in events if name == "sources"]
        assert sources, [n for n, _ in events]
        top = sources[0]["sources"][0]
        assert top["document"] == "bakery.docx", sources[0]["sources"]
        assert "rises for fourteen hours" in top["snippet"], top
        # The conversation keeps the sources with the answer.
        stored = client.get(f"/api/conversations/{conversation_of(events)}").json()
        assert stored["collection"] == "e2e"
        kept = stored["messages"][-1]["sources"][0]
        assert kept["document"] == "bakery.docx" and kept["snippet"] == top["snippet"]
