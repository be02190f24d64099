"""The chatbot's `/v1/responses` through the official OpenAI SDK, in front of the real
llmserver: answers equal the gateway's chat completions of the same conversation, and kept
responses belong to the key that made them."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import httpx
import openai
import pytest

from tests.llmserver.test_responses_api import GREEDY, WEATHER, chat_text
from tests.utils.procs import ServiceProcess

from .conftest import PASSWORD, chatbot_env, login


@pytest.fixture(scope="module")
def client(chatbot) -> openai.OpenAI:
    return openai.OpenAI(base_url=chatbot.url + "/v1", api_key="unused", max_retries=0)


def test_answer_stream_and_continuation(client: openai.OpenAI) -> None:
    first = client.responses.create(input="My name is Ada. Say hi.", max_output_tokens=12,
                                    **GREEDY)
    assert first.output_text == chat_text(
        client, [{"role": "user", "content": "My name is Ada. Say hi."}], 12)
    assert first.usage.output_tokens == 12 and first.status == "incomplete"
    events = list(client.responses.create(input="What is my name?", max_output_tokens=12,
                                          previous_response_id=first.id, stream=True,
                                          **GREEDY))
    assert events[0].type == "response.created" and events[-1].type == "response.incomplete"
    streamed = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    expected = chat_text(client, [{"role": "user", "content": "My name is Ada. Say hi."},
                                  {"role": "assistant", "content": first.output_text},
                                  {"role": "user", "content": "What is my name?"}], 12)
    assert streamed == events[-1].response.output_text == expected
    # Kept: retrievable, and gone once deleted.
    second_id = events[-1].response.id
    assert client.responses.retrieve(second_id).output_text == expected
    client.responses.delete(second_id)
    with pytest.raises(openai.NotFoundError):
        client.responses.retrieve(second_id)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(input="Again", previous_response_id=second_id, **GREEDY)


def test_json_schema_and_function_call_round_trip(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"}},
              "required": ["city"], "additionalProperties": False}
    placed = client.responses.create(
        input="Name a city in France as JSON.", max_output_tokens=40,
        text={"format": {"type": "json_schema", "name": "place", "schema": schema}}, **GREEDY)
    assert isinstance(json.loads(placed.output_text)["city"], str)
    first = client.responses.create(input="What is the weather in Paris?", tools=[WEATHER],
                                    tool_choice="required", max_output_tokens=40, **GREEDY)
    [call] = [item for item in first.output if item.type == "function_call"]
    assert call.name == "get_weather" and isinstance(json.loads(call.arguments)["city"], str)
    # The tool's result goes back through previous_response_id, as agent loops send it.
    second = client.responses.create(
        previous_response_id=first.id, tools=[WEATHER], tool_choice="none",
        input=[{"type": "function_call_output", "call_id": call.call_id,
                "output": "Sunny, 31 degrees."}], max_output_tokens=16, **GREEDY)
    expected = client.chat.completions.create(messages=[
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": call.call_id, "type": "function",
            "function": {"name": call.name, "arguments": call.arguments}}]},
        {"role": "tool", "tool_call_id": call.call_id, "content": "Sunny, 31 degrees."}],
        tools=[{"type": "function", "function": {k: WEATHER[k] for k in
                                                 ("name", "description", "parameters")}}],
        tool_choice="none", max_tokens=16, **GREEDY)
    assert second.output_text == expected.choices[0].message.content
    assert second.usage.input_tokens == expected.usage.prompt_tokens


def test_async_client(chatbot) -> None:
    async def main() -> tuple[str, str]:
        async with openai.AsyncOpenAI(base_url=chatbot.url + "/v1", api_key="unused",
                                      max_retries=0) as client:
            whole = await client.responses.create(input="Say hi", max_output_tokens=10,
                                                  **GREEDY)
            stream = await client.responses.create(input="Say hi", max_output_tokens=10,
                                                   stream=True, **GREEDY)
            parts = [e.delta async for e in stream if e.type == "response.output_text.delta"]
            return whole.output_text, "".join(parts)

    whole, streamed = asyncio.run(main())
    assert whole and whole == streamed


def test_bad_input_is_a_400_and_keeps_nothing(chatbot) -> None:
    for body in ({"input": 3}, {"input": []}, {"input": [{"role": "robot", "content": "x"}]},
                 {"input": "x", "collection": "conv-0123456789abcdef0123456789abcdef"}):
        r = httpx.post(chatbot.url + "/v1/responses", json=body, timeout=30)
        assert r.status_code in (400, 404), (body, r.text)
        assert r.json()["error"]["message"]
    r = httpx.get(chatbot.url + "/v1/responses/" + "x" * 65, timeout=30)
    assert r.status_code == 400


@pytest.fixture(scope="module")
def accounts_bot(llm_server) -> Iterator[ServiceProcess]:
    env = chatbot_env(llm_server.url, CHATBOT_AUTH="accounts", CHATBOT_ADMIN_USER="admin",
                      CHATBOT_ADMIN_PASSWORD=PASSWORD, CHATBOT_API_KEY="service-key")
    with ServiceProcess("chatbot", "CHATBOT_", env=env) as proc:
        yield proc


def test_a_kept_response_belongs_to_its_key(accounts_bot) -> None:
    with httpx.Client(base_url=accounts_bot.url, timeout=30) as browser:
        login(browser, "admin")
        personal = browser.post("/api/keys", json={"name": "agent"}).json()["key"]
    mine = openai.OpenAI(base_url=accounts_bot.url + "/v1", api_key=personal, max_retries=0)
    other = openai.OpenAI(base_url=accounts_bot.url + "/v1", api_key="service-key",
                          max_retries=0)
    made = mine.responses.create(input="Say hi", max_output_tokens=4, **GREEDY)
    assert mine.responses.retrieve(made.id).id == made.id
    with pytest.raises(openai.NotFoundError):
        other.responses.retrieve(made.id)
    with pytest.raises(openai.NotFoundError):
        other.responses.create(input="Go on", previous_response_id=made.id,
                               max_output_tokens=2, **GREEDY)
    with pytest.raises(openai.NotFoundError):
        other.responses.delete(made.id)
    assert mine.responses.retrieve(made.id).output_text == made.output_text
    with pytest.raises(openai.AuthenticationError):
        openai.OpenAI(base_url=accounts_bot.url + "/v1", api_key="wrong",
                      max_retries=0).responses.retrieve(made.id)
