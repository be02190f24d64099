"""The batching engine through a real server: golden equality with llama_cpp.Llama, many
streams at once, chunked prompts, prefix reuse, n > 1, grammars, tools, logprobs, echo."""

from __future__ import annotations

import asyncio
import json
import math
import time
from collections.abc import Iterator

import httpx
import jsonschema
import pytest
from llama_cpp import Llama

from llmserver.models import DEFAULT_MODEL, packaged_models
from tests.utils.procs import ServiceProcess

from .helpers import assert_same_or_near_tie, metric

CHAT = "/v1/chat/completions"
PROMPTS = ["Name three colours.", "What is the capital of Italy?", "Write a haiku about rain.",
           "Why is the sky blue?", "Give me a tip for sleeping well.", "What is 12 times 12?",
           "Describe a cat in one sentence.", "Suggest a name for a boat."]


@pytest.fixture(scope="module")
def server(models_dir) -> Iterator[ServiceProcess]:
    env = {"LLMSERVER_MODELS_DIR": str(models_dir), "LLMSERVER_PARALLEL": "4",
           "LLMSERVER_QUEUE_SIZE": "8", "LLMSERVER_N_CTX": "2048",
           "LLMSERVER_PREFILL_CHUNK": "128",
           # Off: batched answers must equal lone ones and Llama's (flash attention rounds
           # by batch and cache).
           "LLMSERVER_FLASH_ATTN": "off"}
    with ServiceProcess("llmserver", "LLMSERVER_", env=env) as proc:
        yield proc


@pytest.fixture(scope="module")
def llama() -> Iterator[Llama]:
    llm = Llama(model_path=str(packaged_models()[DEFAULT_MODEL]), n_ctx=2048, verbose=False)
    yield llm
    llm.close()


def chat(url: str, content: str | list[dict], **kw) -> dict:
    messages = [{"role": "user", "content": content}] if isinstance(content, str) else content
    body = {"messages": messages, "temperature": 0, "max_tokens": 24, **kw}
    reply = httpx.post(url + CHAT, json=body, timeout=300)
    assert reply.status_code == 200, reply.text
    return reply.json()


def test_lone_requests_match_llama_token_for_token(server, llama) -> None:
    """Temperature 0, one request at a time: the very text Llama gives (chat and text)."""
    for prompt in PROMPTS[:3]:
        ours = chat(server.url, prompt)["choices"][0]["message"]["content"]
        theirs = llama.create_chat_completion(messages=[{"role": "user", "content": prompt}],
                                              max_tokens=24, temperature=0)
        assert ours == theirs["choices"][0]["message"]["content"], prompt
    for prompt in ["Once upon a time", "The three laws of robotics"]:
        ours = httpx.post(server.url + "/v1/completions", timeout=300, json={
            "prompt": prompt, "max_tokens": 24, "temperature": 0}).json()
        theirs = llama.create_completion(prompt, max_tokens=24, temperature=0)
        assert ours["choices"][0]["text"] == theirs["choices"][0]["text"], prompt


async def _stream(client: httpx.AsyncClient, url: str, prompt: str, max_tokens: int,
                  times: list[float] | None = None) -> dict:
    body = {"messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
            "temperature": 0, "stream": True, "logprobs": True, "top_logprobs": 2}
    started = time.perf_counter()
    out: dict = {"text": "", "logprobs": [], "finish": None, "done": False, "ttft": None}
    async with client.stream("POST", url + CHAT, json=body) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                out["done"] = True
                break
            choice = json.loads(data)["choices"][0]
            if choice["delta"].get("content"):
                now = time.perf_counter()
                out["ttft"] = out["ttft"] or now - started
                if times is not None:
                    times.append(now)
                out["text"] += choice["delta"]["content"]
            out["logprobs"] += (choice.get("logprobs") or {}).get("content") or []
            out["finish"] = choice["finish_reason"] or out["finish"]
    out["end"] = time.perf_counter()
    return out


@pytest.mark.parametrize("users", [4, 8])
def test_concurrent_streams_complete_with_the_lone_text(server, users: int) -> None:
    """4 streams fill the slots, 8 also fill the queue: all complete in full, and each
    text is its lone answer, or parts from it only at a near-tie (batched rounding)."""
    prompts = PROMPTS[:users]
    lone = [chat(server.url, p, logprobs=True, top_logprobs=2)["choices"][0] for p in prompts]

    async def main() -> list[dict]:
        async with httpx.AsyncClient(timeout=600) as client:
            return await asyncio.gather(*(_stream(client, server.url, p, 24) for p in prompts))

    for alone, batched in zip(lone, asyncio.run(main()), strict=True):
        assert batched["done"] and batched["finish"] == alone["finish_reason"]
        assert_same_or_near_tie(alone["logprobs"]["content"], batched["logprobs"])


def test_flash_attention_setting_computes_what_llama_computes_with_it(models_dir) -> None:
    """LLMSERVER_FLASH_ATTN=on reaches the engine's context: a lone greedy answer is the one
    Llama gives with flash attention, which for this prompt parts from the default's."""
    messages = [{"role": "user", "content": "Say hi"}]
    answers = {}
    for flash in (True, False):
        llm = Llama(model_path=str(packaged_models()[DEFAULT_MODEL]), n_ctx=2048,
                    flash_attn=flash, verbose=False)
        reply = llm.create_chat_completion(messages=messages, max_tokens=20, temperature=0)
        answers[flash] = reply["choices"][0]["message"]["content"]
        llm.close()
    assert answers[True] != answers[False]  # else this prompt shows nothing
    env = {"LLMSERVER_MODELS_DIR": str(models_dir), "LLMSERVER_PARALLEL": "2",
           "LLMSERVER_N_CTX": "2048", "LLMSERVER_FLASH_ATTN": "on"}
    with ServiceProcess("llmserver", "LLMSERVER_", env=env) as proc:
        ours = chat(proc.url, messages, max_tokens=20)["choices"][0]["message"]["content"]
    assert ours == answers[True]


def test_request_joining_mid_batch_streams_before_the_others_finish(server) -> None:
    async def main() -> tuple[dict, dict]:
        async with httpx.AsyncClient(timeout=600) as client:
            times: list[float] = []
            long = asyncio.create_task(_stream(client, server.url, PROMPTS[0], 150, times))
            while len(times) < 5:
                await asyncio.sleep(0.01)
            short = await _stream(client, server.url, PROMPTS[1], 5)
            return await long, short

    long, short = asyncio.run(main())
    assert long["done"] and short["done"]
    assert short["end"] < long["end"]  # joined the running batch, did not wait for it


def test_long_prompt_does_not_stall_running_streams(server) -> None:
    """A ~1,500-token prompt is read in chunks between decode steps: the running stream's
    longest pause is a small part of the time the whole prompt takes."""
    essay = "The history of computing is long and full of surprising turns. " * 120

    async def main() -> tuple[list[float], dict]:
        async with httpx.AsyncClient(timeout=600) as client:
            times: list[float] = []
            running = asyncio.create_task(_stream(client, server.url, PROMPTS[2], 400, times))
            while len(times) < 5:
                await asyncio.sleep(0.01)
            long = await _stream(client, server.url, essay + "Summarise.", 1)
            long["sent"] = long["end"] - long["ttft"]
            running.cancel()
            return times, long

    times, long = asyncio.run(main())
    started = long["end"] - long["ttft"] if long["ttft"] else long["end"]
    during = [b - a for a, b in zip(times, times[1:], strict=False) if started <= b <= long["end"]]
    assert during, "the running stream produced nothing while the prompt was read"
    assert max(during) < 0.5 * long["ttft"], (max(during), long["ttft"])


def test_second_turn_reuses_the_cached_prefix(server) -> None:
    """Only the new part of a follow-up turn is evaluated; the answer is the cold answer,
    or parts from it at a near-tie (the reused cache rounds like a batch does)."""
    first = [{"role": "user", "content": "Tell me about owls."}]
    answer = chat(server.url, first, max_tokens=40)
    turn2 = first + [{"role": "assistant", "content": answer["choices"][0]["message"]["content"]},
                     {"role": "user", "content": "And what do they eat?"}]
    reused = metric(server.url, "llm_prompt_tokens_reused_total")
    evaluated = metric(server.url, "llm_prompt_tokens_total")
    second = chat(server.url, turn2, logprobs=True, top_logprobs=2)
    prompt_tokens = second["usage"]["prompt_tokens"]
    gained = metric(server.url, "llm_prompt_tokens_reused_total") - reused
    assert gained >= answer["usage"]["prompt_tokens"]  # at least the whole first turn
    assert metric(server.url, "llm_prompt_tokens_total") - evaluated == prompt_tokens - gained
    cold_llama = Llama(model_path=str(packaged_models()[DEFAULT_MODEL]), n_ctx=2048,
                       logits_all=True, verbose=False)
    try:
        cold = cold_llama.create_chat_completion(messages=turn2, max_tokens=24, temperature=0,
                                                 logprobs=True, top_logprobs=2)
    finally:
        cold_llama.close()
    assert_same_or_near_tie(cold["choices"][0]["logprobs"]["content"],
                            second["choices"][0]["logprobs"]["content"])


def test_n_choices_share_one_prompt_evaluation(server) -> None:
    prompt = "Invent a name for a new planet."
    evaluated = metric(server.url, "llm_prompt_tokens_total")
    greedy = chat(server.url, prompt, n=3, max_tokens=12)
    assert metric(server.url, "llm_prompt_tokens_total") - evaluated <= \
        greedy["usage"]["prompt_tokens"]  # evaluated once (or less, with reuse), not 3 times
    texts = [c["message"]["content"] for c in greedy["choices"]]
    assert [c["index"] for c in greedy["choices"]] == [0, 1, 2]
    assert texts[0] and texts[0] == texts[1] == texts[2]
    varied = chat(server.url, prompt, n=3, max_tokens=12, temperature=1.2, seed=7)
    assert len({c["message"]["content"] for c in varied["choices"]}) >= 2
    full = sum(c["finish_reason"] == "length" for c in varied["choices"])
    assert 12 * full <= varied["usage"]["completion_tokens"] <= 36


SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string", "maxLength": 20},
                                      "age": {"type": "integer", "minimum": 0}},
     "required": ["name", "age"]},
    {"type": "object", "properties": {"colour": {"enum": ["red", "green", "blue"]},
                                      "bright": {"type": "boolean"}},
     "required": ["colour", "bright"]},
    {"type": "array", "items": {"type": "integer"}, "minItems": 2, "maxItems": 4},
]


@pytest.mark.parametrize("schema", SCHEMAS, ids=["person", "enum", "array"])
def test_json_schema_output_validates(server, schema: dict) -> None:
    reply = chat(server.url, "Answer in JSON about a person called Ada.", max_tokens=80,
                 response_format={"type": "json_schema",
                                  "json_schema": {"name": "x", "schema": schema}})
    jsonschema.validate(json.loads(reply["choices"][0]["message"]["content"]), schema)


def test_json_object_output_parses(server) -> None:
    reply = chat(server.url, 'Reply with a JSON object with the keys "name" and "age" of a dog.',
                 max_tokens=150, response_format={"type": "json_object"})
    assert reply["choices"][0]["finish_reason"] == "stop"  # closed, not cut at max_tokens
    assert isinstance(json.loads(reply["choices"][0]["message"]["content"]), dict)


WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 30},
        "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "parameters": {"type": "object", "properties": {
        "zone": {"type": "string", "maxLength": 20}}, "required": ["zone"]}}}


@pytest.mark.parametrize("choice", ["required", {"type": "function",
                                                 "function": {"name": "get_time"}}],
                         ids=["required", "named"])
def test_forced_tool_calls_parse_and_validate(server, choice) -> None:
    reply = chat(server.url, "What's the weather in Paris?", max_tokens=60,
                 tools=[WEATHER, TIME], tool_choice=choice)
    out = reply["choices"][0]
    assert out["finish_reason"] == "tool_calls" and out["message"]["content"] is None
    call = out["message"]["tool_calls"][0]
    tool = {"get_weather": WEATHER, "get_time": TIME}[call["function"]["name"]]
    if isinstance(choice, dict):
        assert call["function"]["name"] == "get_time"
    jsonschema.validate(json.loads(call["function"]["arguments"]),
                        tool["function"]["parameters"])
    assert call["id"].startswith("call_") and call["type"] == "function"


RESULT = '{"temp": 21}'
LONGER = '{"temp": 21, "sky": "clear", "wind_kmh": 12, "humidity_pct": 64}'


def test_streamed_tool_call_and_tool_result_round_trip(server) -> None:
    body = {"messages": [{"role": "user", "content": "Weather in Oslo?"}], "max_tokens": 60,
            "temperature": 0, "stream": True, "tools": [WEATHER], "tool_choice": "required"}
    with httpx.stream("POST", server.url + CHAT, json=body, timeout=300) as response:
        chunks = [json.loads(line[5:]) for line in response.iter_lines()
                  if line.startswith("data:") and not line.endswith("[DONE]")]
    calls = [c["choices"][0]["delta"]["tool_calls"] for c in chunks
             if c["choices"] and c["choices"][0]["delta"].get("tool_calls")]
    assert len(calls) == 1 and chunks[-1]["choices"][0]["finish_reason"] == "tool_calls"
    call = calls[0][0]
    jsonschema.validate(json.loads(call["function"]["arguments"]),
                        WEATHER["function"]["parameters"])
    asked = [{"role": "user", "content": "Weather in Oslo?"},
             {"role": "assistant", "content": None,
              "tool_calls": [{k: call[k] for k in ("id", "type", "function")}]}]

    def answered(result: str) -> list[dict]:
        return [*asked, {"role": "tool", "tool_call_id": call["id"], "content": result}]

    reply = chat(server.url, answered(RESULT), tools=[WEATHER], tool_choice="auto",
                 max_tokens=30)
    message = reply["choices"][0]["message"]
    assert message["content"] or message.get("tool_calls")
    # The tool's result reaches the prompt, all of it: the prompt grows by the result's
    # tokens and more (its turn's markers), and a longer result grows it token for token.
    def prompt_tokens(messages: list[dict]) -> int:
        return chat(server.url, messages, tools=[WEATHER], tool_choice="auto",
                    max_tokens=1)["usage"]["prompt_tokens"]

    def tokens(text: str) -> int:
        return httpx.post(server.url + "/tokenize", json={"content": text},
                          timeout=60).json()["count"]

    without = prompt_tokens(asked)
    assert reply["usage"]["prompt_tokens"] > without + tokens(RESULT)
    assert prompt_tokens(answered(LONGER)) - reply["usage"]["prompt_tokens"] == \
        tokens(LONGER) - tokens(RESULT)


def test_chat_logprobs_are_consistent(server) -> None:
    reply = chat(server.url, "Say hi", max_tokens=10, logprobs=True, top_logprobs=3)
    entries = reply["choices"][0]["logprobs"]["content"]
    assert len(entries) == reply["usage"]["completion_tokens"] == 10
    assert "".join(e["token"] for e in entries) == reply["choices"][0]["message"]["content"]
    for e in entries:
        tops = [t["logprob"] for t in e["top_logprobs"]]
        assert len(tops) == 3 and tops == sorted(tops, reverse=True)
        assert e["logprob"] == pytest.approx(tops[0])  # temperature 0 takes the best
        assert all(lp <= 0 for lp in tops) and sum(math.exp(lp) for lp in tops) <= 1 + 1e-4


def test_completion_echo_and_logprobs(server) -> None:
    prompt = "The capital of France is"
    plain = httpx.post(server.url + "/v1/completions", timeout=300, json={
        "prompt": prompt, "max_tokens": 6, "temperature": 0, "echo": True}).json()
    text = plain["choices"][0]["text"]
    assert text.startswith(prompt) and len(text) > len(prompt)
    scored = httpx.post(server.url + "/v1/completions", timeout=300, json={
        "prompt": prompt, "max_tokens": 6, "temperature": 0, "echo": True,
        "logprobs": 2}).json()
    choice = scored["choices"][0]
    lp = choice["logprobs"]
    assert choice["text"] == text
    assert len(lp["tokens"]) == scored["usage"]["prompt_tokens"] + 6
    assert lp["token_logprobs"][0] is None  # nothing predicts the first token
    assert all(v <= 0 for v in lp["token_logprobs"][1:])
    assert "".join(lp["tokens"]) == text
    assert lp["text_offset"] == sorted(lp["text_offset"])
    answer_only = httpx.post(server.url + "/v1/completions", timeout=300, json={
        "prompt": prompt, "max_tokens": 6, "temperature": 0, "logprobs": 1}).json()
    assert len(answer_only["choices"][0]["logprobs"]["tokens"]) == 6
