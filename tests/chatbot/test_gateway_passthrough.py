"""The chatbot's OpenAI endpoint passes the whole request through: `n`, tools and
`logprobs` through :5000/v1 come back as they do from llmserver on :8000 (the `openai` SDK,
sync, streaming and async)."""

from __future__ import annotations

import asyncio
import json

import jsonschema
import openai
import pytest

from tests.utils.procs import ServiceProcess

pytestmark = pytest.mark.slow
WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Current weather in a city",
    "parameters": {"type": "object", "properties": {
        "city": {"type": "string", "maxLength": 30},
        "unit": {"enum": ["celsius", "fahrenheit"]}}, "required": ["city", "unit"]}}}
ASK = [{"role": "user", "content": "What's the weather in Paris?"}]


def clients(llm_server: ServiceProcess, chatbot: ServiceProcess) -> dict[str, openai.OpenAI]:
    return {name: openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0,
                                timeout=120)
            for name, url in (("direct", llm_server.url), ("chatbot", chatbot.url))}


def test_n_choices_and_logprobs_match_llmserver(llm_server, chatbot) -> None:
    replies = {name: client.chat.completions.create(
        model="smollm2-135m-instruct", messages=[{"role": "user", "content": "Say hi"}],
        n=2, max_tokens=6, temperature=0, logprobs=True, top_logprobs=2)
        for name, client in clients(llm_server, chatbot).items()}
    direct, gateway = replies["direct"], replies["chatbot"]
    assert len(gateway.choices) == len(direct.choices) == 2
    for d, g in zip(direct.choices, gateway.choices, strict=True):
        assert g.index == d.index and g.message.content == d.message.content
        assert g.finish_reason == d.finish_reason
        assert g.logprobs is not None and d.logprobs is not None
        assert [t.token for t in g.logprobs.content] == [t.token for t in d.logprobs.content]
        assert all(len(t.top_logprobs) == 2 for t in g.logprobs.content)
    assert gateway.usage.completion_tokens == direct.usage.completion_tokens


def test_a_required_tool_call_comes_back_as_tool_calls(llm_server, chatbot) -> None:
    for name, client in clients(llm_server, chatbot).items():
        reply = client.chat.completions.create(
            model="smollm2-135m-instruct", messages=ASK, max_tokens=60, temperature=0,
            tools=[WEATHER], tool_choice="required")
        choice = reply.choices[0]
        assert choice.finish_reason == "tool_calls", (name, choice)
        assert choice.message.content is None and choice.message.tool_calls, name
        call = choice.message.tool_calls[0]
        assert call.type == "function" and call.function.name == "get_weather"
        assert call.id.startswith("call_")
        jsonschema.validate(json.loads(call.function.arguments),
                            WEATHER["function"]["parameters"])


def test_a_streamed_tool_call_arrives_as_deltas(chatbot) -> None:
    client = openai.OpenAI(base_url=chatbot.url + "/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model="smollm2-135m-instruct", messages=ASK, max_tokens=60, temperature=0,
        tools=[WEATHER], tool_choice="required", stream=True)
    calls, finish = [], None
    for chunk in stream:
        for choice in chunk.choices:
            calls += choice.delta.tool_calls or []
            finish = choice.finish_reason or finish
    assert finish == "tool_calls" and calls and calls[0].function.name == "get_weather"
    arguments = "".join(c.function.arguments or "" for c in calls)
    jsonschema.validate(json.loads(arguments), WEATHER["function"]["parameters"])


def test_async_client_gets_every_choice(chatbot) -> None:
    async def main() -> list[str]:
        async with openai.AsyncOpenAI(base_url=chatbot.url + "/v1", api_key="unused",
                                      max_retries=0) as client:
            reply = await client.chat.completions.create(
                model="smollm2-135m-instruct", messages=[{"role": "user", "content": "Hi"}],
                n=2, max_tokens=5, temperature=1.0, seed=3, logprobs=True)
            assert all(c.logprobs and c.logprobs.content for c in reply.choices)
            return [c.message.content or "" for c in reply.choices]

    texts = asyncio.run(main())
    assert len(texts) == 2 and all(texts)
