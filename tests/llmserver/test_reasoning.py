"""Reasoning apart, as llama-server's `reasoning_format` has it: a thinking answer's leading
<think>…</think> block comes back as `reasoning_content` (and vLLM's `reasoning`), whole and
streamed, and `content` is the answer; `none` leaves it inline. SmolLM2 thinks when the
conversation shows it how (few-shot, temperature 0); a copy whose template opens the block
in the generation prompt stands for DeepSeek-R1/Qwen3-style templates."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import httpx
import openai
import pytest

from llmserver.engine import Event
from llmserver.models import DEFAULT_MODEL
from llmserver.responses import Choice
from llmserver.schemas import Tool
from services.thinking import ThinkSplitter
from tests.utils.thinking_model import ANSWER, REASONING, THINK, opens_think_model

GREEDY: dict[str, Any] = {"temperature": 0, "seed": 1, "max_tokens": 40}
WEATHER = Tool.model_validate({"type": "function", "function": {
    "name": "get_weather", "parameters": {"type": "object",
                                          "properties": {"city": {"type": "string"}}}}})


@pytest.fixture(scope="module")
def client(llm_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=llm_server.url + "/v1", api_key="unused", max_retries=0)


def stream_deltas(url: str, body: dict[str, Any]) -> list[dict[str, Any]]:
    """The `delta` of every chunk of a streamed chat answer (raw SSE)."""
    with httpx.stream("POST", url + "/v1/chat/completions", json={**body, "stream": True},
                      timeout=60) as response:
        assert response.status_code == 200
        return [json.loads(line[6:])["choices"][0]["delta"] for line in response.iter_lines()
                if line.startswith("data: {")]


def joined(deltas: list[dict[str, Any]], key: str) -> str:
    return "".join(d.get(key) or "" for d in deltas)


def test_whole_and_streamed_answers_split_the_reasoning(client: openai.OpenAI,
                                                         llm_server) -> None:
    message = client.chat.completions.create(model=DEFAULT_MODEL, messages=THINK,
                                             **GREEDY).choices[0].message
    assert message.content == ANSWER
    assert message.model_extra == {"reasoning_content": REASONING, "reasoning": REASONING}
    deltas = stream_deltas(llm_server.url, {"messages": THINK, **GREEDY})
    assert joined(deltas, "reasoning_content") == REASONING
    assert joined(deltas, "content") == ANSWER
    thoughts = [d for d in deltas if "reasoning_content" in d]
    assert all(d["reasoning"] == d["reasoning_content"] and "content" not in d
               for d in thoughts)
    assert len(thoughts) > 1  # streamed as it comes, not in one piece at the end


def test_none_keeps_it_inline_and_the_async_sdk_reads_the_deltas(llm_server) -> None:
    async def run() -> tuple[Any, list[Any]]:
        client = openai.AsyncOpenAI(base_url=llm_server.url + "/v1", api_key="unused",
                                    max_retries=0)
        async with client:
            inline = await client.chat.completions.create(
                model=DEFAULT_MODEL, messages=THINK, extra_body={"reasoning_format": "none"},
                **GREEDY)
            stream = await client.chat.completions.create(
                model=DEFAULT_MODEL, messages=THINK, stream=True,
                extra_body={"reasoning_format": "deepseek"}, **GREEDY)
            return inline, [c.choices[0].delta async for c in stream if c.choices]

    inline, deltas = asyncio.run(run())
    assert inline.choices[0].message.content == f"<think>{REASONING}</think>{ANSWER}"
    assert not inline.choices[0].message.model_extra
    assert "".join((d.model_extra or {}).get("reasoning_content", "") for d in deltas) == \
        REASONING
    assert "".join(d.content or "" for d in deltas) == ANSWER
    bad = httpx.post(llm_server.url + "/v1/chat/completions", timeout=30,
                     json={"messages": THINK, "reasoning_format": "hidden"})
    assert bad.status_code == 400
    assert bad.json()["error"]["param"] == "reasoning_format"


def test_a_tool_call_is_read_from_the_answer_after_the_reasoning(client: openai.OpenAI) -> None:
    shots = [m for city in ("Paris", "Rome") for m in (
        {"role": "user", "content": f"Weather in {city}?"},
        {"role": "assistant", "content": f"<think>The user wants the weather in {city}.</think>"
         f'{{"name": "get_weather", "arguments": {{"city": "{city}"}}}}'})]
    reply = client.chat.completions.create(
        model=DEFAULT_MODEL, messages=[*shots, {"role": "user", "content": "Weather in Oslo?"}],
        tools=[WEATHER.model_dump()], **GREEDY).choices[0]
    assert reply.finish_reason == "tool_calls"
    assert reply.message.tool_calls[0].function.name == "get_weather"
    assert reply.message.model_extra["reasoning_content"] == "The user wants the weather in Oslo."


def test_a_grammar_holds_the_whole_output_to_the_answer(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"answer": {"type": "integer"}},
              "required": ["answer"]}
    message = client.chat.completions.create(
        model=DEFAULT_MODEL, messages=THINK, response_format={
            "type": "json_schema", "json_schema": {"name": "sum", "schema": schema}},
        **GREEDY).choices[0].message
    assert isinstance(json.loads(message.content or "")["answer"], int)
    assert not message.model_extra


def test_a_template_that_opens_the_block(client: openai.OpenAI, llm_server,
                                         models_dir: Path) -> None:
    model = opens_think_model(models_dir)
    message = client.chat.completions.create(model=model, messages=THINK,
                                             **GREEDY).choices[0].message
    assert (message.content, message.model_extra["reasoning_content"]) == (ANSWER, REASONING)
    # Cut short before the close tag: all of it is reasoning, streamed as such.
    deltas = stream_deltas(llm_server.url, {"model": model, "messages": THINK,
                                            **GREEDY, "max_tokens": 4})
    assert joined(deltas, "reasoning_content") == "3 plus 2"
    assert joined(deltas, "content") == ""


def feed(choice: Choice, text: str, cut: int = 1) -> str:
    """Stream `text` into `choice` `cut` characters a token; the streamed answer."""
    sent = "".join(choice.add(Event("token", text=text[i:i + cut]))
                   for i in range(0, len(text), cut))
    return sent + choice.done(Event("done", finish_reason="stop", tokens=len(text)))


def test_choice_drops_the_splitter_once_the_answer_starts_plainly() -> None:
    choice = Choice(0, think=ThinkSplitter(leading=True))
    assert choice.add(Event("token", text="Hello")) == "Hello"
    assert choice.think is None  # the plain path from here on
    thinker = Choice(0, think=ThinkSplitter(leading=True))
    assert feed(thinker, f"<think>{REASONING}</think> {ANSWER}", cut=3) == ANSWER
    assert thinker.message() == {"role": "assistant", "content": ANSWER,
                                 "reasoning_content": REASONING, "reasoning": REASONING}
    assert thinker.take_thought() == REASONING and thinker.take_thought() == ""


def test_choice_parses_a_call_after_the_reasoning() -> None:
    choice = Choice(0, [WEATHER], think=ThinkSplitter(opened=True, leading=True))
    call = '{"name": "get_weather", "arguments": {"city": "Oslo"}}'
    assert feed(choice, f"Oslo, then.</think>\n{call}") == ""
    message = choice.message()
    assert message["tool_calls"][0]["function"]["arguments"] == '{"city": "Oslo"}'
    assert message["content"] is None and message["reasoning_content"] == "Oslo, then."
