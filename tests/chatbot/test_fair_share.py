"""Through a real chatbot in front of a real llmserver (2 slots): the chatbot keeps as many
answers in flight as llmserver advertises, and one person's 20 queued requests do not push
another person's first token back by more than one slot's turn."""

from __future__ import annotations

import asyncio
import json
import statistics
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.utils.procs import ServiceProcess, wait_for

from .conftest import chatbot_env

pytestmark = pytest.mark.slow
TOKENS = 24


@pytest.fixture(scope="module")
def bot(llm_server: ServiceProcess) -> Iterator[ServiceProcess]:
    # Without accounts a person is a client address: the test speaks for two through a
    # trusted proxy's X-Forwarded-For.
    env = chatbot_env(llm_server.url, CHATBOT_TRUSTED_PROXIES="127.0.0.1",
                      CHATBOT_REQUESTER_QUEUE="32", CHATBOT_QUEUE_SIZE="64",
                      CHATBOT_SLOTS_REFRESH_S="1")
    with ServiceProcess("chatbot", "CHATBOT_", env=env) as proc:
        yield proc


def queue_state(bot: ServiceProcess) -> dict:
    return httpx.get(bot.url + "/api/admin/status", timeout=10).json()["queue"]


def test_concurrency_is_learned_from_llmserver(bot: ServiceProcess,
                                               llm_server: ServiceProcess) -> None:
    models = httpx.get(llm_server.url + "/v1/models", timeout=10).json()["data"]
    assert {m["slots"] for m in models} == {2}
    wait_for(lambda: queue_state(bot)["upstreams"][0]["concurrency"] == 2, timeout=20,
             what="the chatbot to learn llmserver's 2 slots")
    assert queue_state(bot)["upstreams"][0]["auto"] is True


async def _ask(client: httpx.AsyncClient, person: str, n: int) -> tuple[float, float]:
    """One streamed answer: (seconds to its first token, seconds in all)."""
    body = {"messages": [{"role": "user", "content": f"Count to ten, take {n}."}],
            "max_tokens": TOKENS, "temperature": 0, "stream": True}
    started = time.perf_counter()
    first = None
    async with client.stream("POST", "/v1/chat/completions", json=body,
                             headers={"x-forwarded-for": person}) as response:
        assert response.status_code == 200, await response.aread()
        async for line in response.aiter_lines():
            if line.startswith("data:") and first is None and line[5:].strip() != "[DONE]":
                chunk = json.loads(line[5:])
                if any((c.get("delta") or {}).get("content") for c in chunk["choices"]):
                    first = time.perf_counter() - started
    assert first is not None
    return first, time.perf_counter() - started


def test_one_persons_backlog_does_not_hold_back_another(bot: ServiceProcess) -> None:
    wait_for(lambda: queue_state(bot)["upstreams"][0]["concurrency"] == 2, timeout=20,
             what="the chatbot to learn llmserver's 2 slots")

    async def main() -> tuple[list[tuple[float, float]], tuple[float, float]]:
        async with httpx.AsyncClient(base_url=bot.url, timeout=300) as client:
            backlog = [asyncio.create_task(_ask(client, "10.0.0.1", i)) for i in range(20)]
            deadline = time.monotonic() + 30
            while queue_state(bot)["waiting"] < 15 and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
            assert queue_state(bot)["waiting"] >= 15, queue_state(bot)
            other = await _ask(client, "10.0.0.2", 99)
            return await asyncio.gather(*backlog), other

    backlog, (other_first, _) = asyncio.run(main())
    turn = statistics.median(total - first for first, total in backlog)  # one answer's decode
    last_first = max(first for first, _ in backlog)
    # Arrival order would have put the other person behind ~18 of the backlog (~9 turns of
    # the 2 slots); in turn, one slot must come free first: about one turn, two at most.
    assert other_first < last_first / 3, (other_first, last_first)
    assert other_first < 2 * turn + 1.0, (other_first, turn)
