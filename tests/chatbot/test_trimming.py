"""History trimming by the model's own tokenizer (llmserver /tokenize), system prompt kept."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from chatbot.history import trim
from chatbot.llm import LLMClient
from chatbot.queue import FairQueue, Upstream
from tests.chatbot.conftest import answer_of, chat_events, conversation_of
from tests.utils.procs import ServiceProcess

pytestmark = pytest.mark.slow
LONG = "The quick brown fox jumps over the lazy dog. " * 90  # about 900 tokens


def test_trim_with_the_real_tokenizer_keeps_the_system_prompt(llm_server: ServiceProcess) -> None:
    async def main() -> None:
        queue = FairQueue([Upstream(llm_server.url + "/v1")], 4, 1.0)
        llm = LLMClient(queue, None, 30)
        try:
            system = {"role": "system", "content": "You are Jarvis."}
            history = []
            for i in range(4):
                history += [{"role": "user", "content": f"{i} {LONG}"},
                            {"role": "assistant", "content": f"Noted {i}."}]
            history.append({"role": "user", "content": "Summarise."})

            async def count(messages: list[dict]) -> tuple[int, int]:
                return await llm.count_tokens(messages, "smollm2-135m-instruct")

            messages, dropped, tokens = await trim(system, history, count, reserve=256)
            assert messages[0] == system and messages[-1]["content"] == "Summarise."
            assert dropped >= 6 and messages[1]["role"] == "user"
            real, n_ctx = await count(messages)
            assert real == tokens <= n_ctx - 256
        finally:
            await llm.aclose()

    asyncio.run(main())


def test_long_conversation_is_trimmed_visibly_and_still_answers(chatbot: ServiceProcess) -> None:
    with httpx.Client(base_url=chatbot.url, timeout=120) as client:
        notices: list[str] = []
        cid = None
        for i in range(3):
            events = chat_events(client, f"Part {i}: {LONG} Reply with OK.", conversation_id=cid)
            cid = conversation_of(events)
            notices += [data["code"] for name, data in events if name == "notice"]
            assert answer_of(events) and events[-1][0] == "done"
        assert "history_trimmed" in notices
        # Trimming only shapes what the model sees; the page keeps the whole conversation.
        assert len(client.get(f"/api/conversations/{cid}").json()["messages"]) == 6
