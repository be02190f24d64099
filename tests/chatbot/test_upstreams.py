"""CHATBOT_LLM_URLS: the chatbot spreads answers over two real llmserver processes, and
skips one that is down (a dead port from the start, or a server killed mid-test) without an
error reaching the user."""

from __future__ import annotations

import concurrent.futures
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.chatbot.conftest import chatbot_env, dead_url
from tests.llmserver.helpers import metric
from tests.utils.procs import ServiceProcess

pytestmark = pytest.mark.slow
GENERATIONS = "llm_generations_total"


def llmserver(models_dir: Path) -> ServiceProcess:
    return ServiceProcess("llmserver", "LLMSERVER_", env={
        "LLMSERVER_MODELS_DIR": str(models_dir), "LLMSERVER_PARALLEL": "1",
        "LLMSERVER_QUEUE_SIZE": "2", "LLMSERVER_N_CTX": "1024"})


@pytest.fixture(scope="module")
def pair(models_dir: Path) -> Iterator[tuple[ServiceProcess, ServiceProcess]]:
    with llmserver(models_dir) as a, llmserver(models_dir) as b:
        yield a, b


def ask(client: httpx.Client, text: str, max_tokens: int = 8) -> str:
    reply = client.post("/v1/chat/completions", json={
        "messages": [{"role": "user", "content": text}], "max_tokens": max_tokens,
        "temperature": 0})
    assert reply.status_code == 200, reply.text
    content = reply.json()["choices"][0]["message"]["content"]
    assert content.strip(), reply.json()
    return content


def generations(*servers: ServiceProcess) -> list[float]:
    return [metric(s.url, GENERATIONS) for s in servers]


def test_answers_are_spread_over_both_servers(pair: tuple[ServiceProcess, ServiceProcess]) -> None:
    a, b = pair
    env = chatbot_env(a.url, CHATBOT_LLM_URLS=f"{a.url}/v1,{b.url}/v1")
    with ServiceProcess("chatbot", "CHATBOT_", env=env) as chatbot, \
            httpx.Client(base_url=chatbot.url, timeout=300) as client:
        before = generations(a, b)
        # Four at once: two run side by side (one per server), two wait for the first free.
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            answers = list(pool.map(lambda i: ask(client, f"Name a colour ({i})."), range(4)))
        moved = [after - was for after, was in zip(generations(a, b), before, strict=True)]
    assert len(answers) == 4
    assert sum(moved) == 4 and min(moved) >= 1, f"generations per server: {moved}"


def test_a_dead_url_is_skipped(pair: tuple[ServiceProcess, ServiceProcess]) -> None:
    a, _ = pair
    env = chatbot_env(a.url, CHATBOT_LLM_URLS=f"{dead_url()}/v1,{a.url}/v1",
                      CHATBOT_RETRY_DOWN_S="30")
    with ServiceProcess("chatbot", "CHATBOT_", env=env) as chatbot, \
            httpx.Client(base_url=chatbot.url, timeout=300) as client:
        before = metric(a.url, GENERATIONS)
        for i in range(3):
            ask(client, f"Name a fruit ({i}).")
        assert metric(a.url, GENERATIONS) - before == 3


def test_a_server_killed_mid_test_is_skipped(pair: tuple[ServiceProcess, ServiceProcess],
                                             models_dir: Path) -> None:
    a, _ = pair
    doomed = llmserver(models_dir).start()
    try:
        env = chatbot_env(a.url, CHATBOT_LLM_URLS=f"{a.url}/v1,{doomed.url}/v1",
                          CHATBOT_RETRY_DOWN_S="30")
        with ServiceProcess("chatbot", "CHATBOT_", env=env) as chatbot, \
                httpx.Client(base_url=chatbot.url, timeout=300) as client:
            before = generations(a, doomed)
            for i in range(2):
                ask(client, f"Name an animal ({i}).")
            assert [x - y for x, y in zip(generations(a, doomed), before, strict=True)] == [1, 1]
            doomed.kill()
            before_a = metric(a.url, GENERATIONS)
            # The next answers would go to the killed server in turn: every one still arrives,
            # streamed and not.
            for i in range(3):
                ask(client, f"Name a tree ({i}).")
            with client.stream("POST", "/v1/chat/completions", json={
                    "messages": [{"role": "user", "content": "Name a bird."}],
                    "max_tokens": 8, "temperature": 0, "stream": True}) as response:
                assert response.status_code == 200
                body = response.read().decode()
            assert '"error"' not in body and "[DONE]" in body
            assert metric(a.url, GENERATIONS) - before_a == 4
    finally:
        doomed.kill()
