"""llmserver through the official OpenAI SDK and raw SSE, against the real SmolLM2."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest
from prometheus_client.parser import text_string_to_metric_families

from llmserver.models import DEFAULT_MODEL

HI = [{"role": "user", "content": "Say hi"}]
# Greedy decoding of SmolLM2-135M-Instruct Q4_1 for HI: pins template, sampling and decode.
GOLDEN_CHAT = "I'm glad you're here! I'm here to help with any kind of creative writing project."
GOLDEN_COMPLETION = " Paris.\n\nThe United States has"


@pytest.fixture(scope="module")
def client(llm_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=llm_server.url + "/v1", api_key="unused", max_retries=0)


def test_models_lists_default(client: openai.OpenAI) -> None:
    ids = [m.id for m in client.models.list().data]
    assert DEFAULT_MODEL in ids


def test_chat_golden_output(client: openai.OpenAI) -> None:
    reply = client.chat.completions.create(model=DEFAULT_MODEL, messages=HI, max_tokens=20,
                                           temperature=0, seed=42)
    assert reply.choices[0].message.content == GOLDEN_CHAT
    assert reply.choices[0].finish_reason == "length"
    assert reply.model == DEFAULT_MODEL
    assert reply.usage.completion_tokens == 20 and reply.usage.prompt_tokens > 0


def test_completion_golden_output(client: openai.OpenAI) -> None:
    reply = client.completions.create(model=DEFAULT_MODEL, prompt="The capital of France is",
                                      max_tokens=8, temperature=0, seed=42)
    assert reply.choices[0].text == GOLDEN_COMPLETION


def test_chat_stream_matches_plain(client: openai.OpenAI) -> None:
    stream = client.chat.completions.create(model=DEFAULT_MODEL, messages=HI, max_tokens=20,
                                            temperature=0, stream=True)
    text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
    assert text == GOLDEN_CHAT


def test_sse_sequence_is_valid(llm_server) -> None:
    body = {"model": DEFAULT_MODEL, "messages": HI, "max_tokens": 6, "temperature": 0,
            "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", llm_server.url + "/v1/chat/completions", json=body,
                      timeout=60) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        datas = [line[5:].strip() for line in response.iter_lines() if line.startswith("data:")]
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    assert len({c["id"] for c in chunks}) == 1
    assert chunks[0]["choices"][0]["delta"].get("role") == "assistant"
    finishes = [c["choices"][0]["finish_reason"] for c in chunks if c["choices"]]
    assert finishes[-1] == "length" and all(f is None for f in finishes[:-1])
    usage = chunks[-1]["usage"]
    assert chunks[-1]["choices"] == []
    assert usage["completion_tokens"] == 6
    assert usage["total_tokens"] == usage["prompt_tokens"] + 6


def test_completion_stream(client: openai.OpenAI) -> None:
    stream = client.completions.create(model=DEFAULT_MODEL, prompt="The capital of France is",
                                       max_tokens=8, temperature=0, stream=True)
    assert "".join(c.choices[0].text for c in stream) == GOLDEN_COMPLETION


def test_tokenize_counts_like_usage(llm_server) -> None:
    reply = httpx.post(llm_server.url + "/tokenize", json={"messages": HI}, timeout=30).json()
    usage = httpx.post(llm_server.url + "/v1/chat/completions", timeout=60,
                       json={"messages": HI, "max_tokens": 1}).json()["usage"]
    assert reply["count"] == usage["prompt_tokens"]
    assert reply["n_ctx"] == 2048


def samples(url: str) -> dict[tuple[str, tuple], float]:
    """/metrics as {(sample name, sorted labels): value}."""
    text = httpx.get(url + "/metrics", timeout=10).text
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


def test_metrics_count_requests_and_tokens_as_the_answers_report(llm_server) -> None:
    url = llm_server.url
    chats = ("http_requests_total",
             (("method", "POST"), ("route", "/v1/chat/completions"), ("status", "200")))
    before = samples(url)
    usages, took = [], 0.0
    # The same prompt twice: the second reuses the first's cache, which counts apart.
    for max_tokens in (5, 16):
        start = time.perf_counter()
        reply = httpx.post(url + "/v1/chat/completions", timeout=60, json={
            "messages": [{"role": "user", "content": "Tell me a long story."}],
            "max_tokens": max_tokens, "temperature": 0})
        took = time.perf_counter() - start
        usages.append(reply.json()["usage"])
        assert usages[-1]["completion_tokens"] == max_tokens
    after = samples(url)

    def rise(name: str, labels: tuple = ()) -> float:
        return after[(name, labels)] - before.get((name, labels), 0)

    assert rise(*chats) == 2
    assert rise("llm_generations_total") == 2
    assert rise("llm_tokens_generated_total") == sum(u["completion_tokens"] for u in usages)
    assert rise("llm_prompt_tokens_total") + rise("llm_prompt_tokens_reused_total") == \
        sum(u["prompt_tokens"] for u in usages)
    assert rise("llm_prompt_tokens_reused_total") > 0
    # Tokens per second of the last answer (its decoding, after the first token): at least
    # its tokens over the whole request's time, and not ten times more (the request is
    # mostly decoding), so a count per millisecond or per minute fails.
    tps, n = after[("llm_tokens_per_second", ())], usages[-1]["completion_tokens"]
    assert (n - 1) / took <= tps <= 10 * n / took, (tps, n, took)


def test_models_show_context_length(llm_server) -> None:
    models = httpx.get(llm_server.url + "/v1/models", timeout=10).json()["data"]
    smol = next(m for m in models if m["id"] == DEFAULT_MODEL)
    assert smol["context_length"] == 2048  # min(LLMSERVER_N_CTX, the GGUF's 8192)
