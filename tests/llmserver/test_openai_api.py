"""llmserver through the official OpenAI SDK and raw SSE, against the real SmolLM2."""

from __future__ import annotations

import json

import httpx
import openai
import pytest

from llmserver.models import DEFAULT_MODEL

from .helpers import metric

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


def test_metrics_count_a_five_token_request(llm_server) -> None:
    url = llm_server.url
    tokens = metric(url, "llm_tokens_generated_total")
    requests = metric(url, "http_requests_total")
    reply = httpx.post(url + "/v1/chat/completions", timeout=60, json={
        "messages": [{"role": "user", "content": "Tell me a long story."}], "max_tokens": 5,
        "temperature": 0})
    assert reply.json()["usage"]["completion_tokens"] == 5
    assert metric(url, "llm_tokens_generated_total") == tokens + 5
    assert metric(url, "llm_tokens_per_second") > 0
    assert metric(url, "http_requests_total") >= requests + 1


def test_models_show_context_length(llm_server) -> None:
    models = httpx.get(llm_server.url + "/v1/models", timeout=10).json()["data"]
    smol = next(m for m in models if m["id"] == DEFAULT_MODEL)
    assert smol["context_length"] == 2048  # min(LLMSERVER_N_CTX, the GGUF's 8192)
