"""llmserver's `/v1/responses` through the official OpenAI SDK, against the real SmolLM2:
each answer must equal the chat completion of the same conversation (one engine path)."""

from __future__ import annotations

import asyncio
import json

import httpx
import openai
import pytest

from llmserver.models import DEFAULT_MODEL

from .test_openai_api import GOLDEN_CHAT

GREEDY = {"model": DEFAULT_MODEL, "temperature": 0}
WEATHER = {"type": "function", "name": "get_weather", "description": "Weather in a city.",
           "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                          "required": ["city"]}}


@pytest.fixture(scope="module")
def client(llm_server) -> openai.OpenAI:
    return openai.OpenAI(base_url=llm_server.url + "/v1", api_key="unused", max_retries=0)


def chat_text(client: openai.OpenAI, messages: list[dict], max_tokens: int) -> str:
    reply = client.chat.completions.create(messages=messages, max_tokens=max_tokens, **GREEDY)
    return reply.choices[0].message.content or ""


def test_text_response_is_the_chat_answer(client: openai.OpenAI) -> None:
    reply = client.responses.create(input="Say hi", max_output_tokens=20, **GREEDY)
    assert reply.object == "response" and reply.id.startswith("resp_")
    assert reply.output_text == GOLDEN_CHAT
    assert reply.output[0].type == "message" and reply.output[0].role == "assistant"
    # 20 tokens ran out before the end: incomplete, as OpenAI reports it.
    assert reply.status == "incomplete"
    assert reply.incomplete_details.reason == "max_output_tokens"
    assert reply.usage.output_tokens == 20 and reply.usage.input_tokens > 0
    assert reply.usage.total_tokens == reply.usage.input_tokens + 20


def test_instructions_are_a_system_message(client: openai.OpenAI) -> None:
    system = "You are a pirate. Answer in one short sentence."
    reply = client.responses.create(input="Where is Paris?", instructions=system,
                                    max_output_tokens=16, **GREEDY)
    expected = chat_text(client, [{"role": "system", "content": system},
                                  {"role": "user", "content": "Where is Paris?"}], 16)
    assert reply.output_text == expected and reply.instructions == system


def test_stream_events_add_up_to_the_answer(client: openai.OpenAI) -> None:
    events = list(client.responses.create(input="Say hi", max_output_tokens=20, stream=True,
                                          **GREEDY))
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[2:4] == ["response.output_item.added", "response.content_part.added"]
    assert kinds[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.incomplete"]
    assert [e.sequence_number for e in events] == list(range(len(events)))
    deltas = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert deltas == GOLDEN_CHAT
    final = events[-1].response
    assert final.output_text == GOLDEN_CHAT and final.usage.output_tokens == 20
    assert len({e.response.id for e in events if hasattr(e, "response")}) == 1


def test_stream_helper_gives_the_final_response(client: openai.OpenAI) -> None:
    # An answer that ends by itself: the helper's final response needs response.completed.
    with client.responses.stream(input="Say hi", max_output_tokens=200, **GREEDY) as stream:
        texts = [e.delta for e in stream if e.type == "response.output_text.delta"]
        final = stream.get_final_response()
    assert final.status == "completed" and final.output[0].status == "completed"
    expected = chat_text(client, [{"role": "user", "content": "Say hi"}], 200)
    assert "".join(texts) == final.output_text == expected
    assert final.output_text.startswith(GOLDEN_CHAT)


def test_json_schema_format(client: openai.OpenAI) -> None:
    schema = {"type": "object", "properties": {"city": {"type": "string"},
                                               "country": {"type": "string"}},
              "required": ["city", "country"], "additionalProperties": False}
    reply = client.responses.create(
        input="Name a city in France as JSON.", max_output_tokens=60,
        text={"format": {"type": "json_schema", "name": "place", "schema": schema,
                         "strict": True}}, **GREEDY)
    data = json.loads(reply.output_text)
    assert set(data) == {"city", "country"} and all(isinstance(v, str) for v in data.values())
    assert reply.text.format.type == "json_schema"


def test_function_call_round_trip(client: openai.OpenAI) -> None:
    first = client.responses.create(
        input="What is the weather in Paris?", tools=[WEATHER],
        tool_choice={"type": "function", "name": "get_weather"}, max_output_tokens=40,
        **GREEDY)
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    args = json.loads(calls[0].arguments)
    assert isinstance(args["city"], str) and calls[0].call_id
    assert first.output_text == ""
    # The result goes back as a function_call_output: the answer is the chat answer to the
    # same conversation with the tool message in it.
    result = "Sunny, 31 degrees, and kumquats fall from the sky."
    second = client.responses.create(
        input=[{"role": "user", "content": "What is the weather in Paris?"},
               {"type": "function_call", "call_id": calls[0].call_id, "name": "get_weather",
                "arguments": calls[0].arguments},
               {"type": "function_call_output", "call_id": calls[0].call_id,
                "output": result}],
        tools=[WEATHER], tool_choice="none", max_output_tokens=24, **GREEDY)
    expected = client.chat.completions.create(messages=[
        {"role": "user", "content": "What is the weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [{
            "id": calls[0].call_id, "type": "function",
            "function": {"name": "get_weather", "arguments": calls[0].arguments}}]},
        {"role": "tool", "tool_call_id": calls[0].call_id, "content": result}],
        tools=[{"type": "function", "function": {k: WEATHER[k] for k in
                                                 ("name", "description", "parameters")}}],
        tool_choice="none", max_tokens=24, **GREEDY)
    assert second.output_text == expected.choices[0].message.content
    assert second.output_text and second.usage.input_tokens == expected.usage.prompt_tokens
    # Without the call and its output the prompt is shorter: they reached the template.
    bare = client.responses.create(input="What is the weather in Paris?", tools=[WEATHER],
                                   tool_choice="none", max_output_tokens=1, **GREEDY)
    assert second.usage.input_tokens > bare.usage.input_tokens + 10


def test_previous_response_id_continues_the_conversation(client: openai.OpenAI) -> None:
    first = client.responses.create(input="My name is Ada. Say hi.", max_output_tokens=12,
                                    **GREEDY)
    second = client.responses.create(input="What is my name?", max_output_tokens=12,
                                     previous_response_id=first.id, **GREEDY)
    expected = client.chat.completions.create(messages=[
        {"role": "user", "content": "My name is Ada. Say hi."},
        {"role": "assistant", "content": first.output_text},
        {"role": "user", "content": "What is my name?"}], max_tokens=12, **GREEDY)
    assert second.output_text == expected.choices[0].message.content
    assert second.usage.input_tokens == expected.usage.prompt_tokens
    assert second.previous_response_id == first.id
    # A response made with store=false cannot be continued.
    unkept = client.responses.create(input="Hi", max_output_tokens=2, store=False, **GREEDY)
    with pytest.raises(openai.NotFoundError):
        client.responses.create(input="Again", previous_response_id=unkept.id,
                                max_output_tokens=2, **GREEDY)


def test_async_client(llm_server) -> None:
    async def main() -> tuple[str, str]:
        client = openai.AsyncOpenAI(base_url=llm_server.url + "/v1", api_key="unused",
                                    max_retries=0)
        whole = await client.responses.create(input="Say hi", max_output_tokens=20, **GREEDY)
        stream = await client.responses.create(input="Say hi", max_output_tokens=20,
                                               stream=True, **GREEDY)
        parts = [e.delta async for e in stream if e.type == "response.output_text.delta"]
        await client.close()
        return whole.output_text, "".join(parts)

    assert asyncio.run(main()) == (GOLDEN_CHAT, GOLDEN_CHAT)


def test_bad_requests_are_openai_errors(client: openai.OpenAI, llm_server) -> None:
    with pytest.raises(openai.NotFoundError) as missing:
        client.responses.create(input="Hi", previous_response_id="resp_nope", **GREEDY)
    assert missing.value.body["param"] == "previous_response_id"
    with pytest.raises(openai.BadRequestError) as image:
        client.responses.create(input=[{"role": "user", "content": [
            {"type": "input_image", "image_url": "http://127.0.0.1:1/x.png"}]}], **GREEDY)
    assert "only text parts" in image.value.message
    with pytest.raises(openai.NotFoundError):
        client.responses.create(model="no-such-model", input="Hi")
    raw = httpx.post(llm_server.url + "/v1/responses", json={"input": 3}, timeout=30)
    assert raw.status_code == 400 and raw.json()["error"]["type"] == "invalid_request_error"
    raw = httpx.post(llm_server.url + "/v1/responses", json={"input": []}, timeout=30)
    assert raw.status_code == 400 and raw.json()["error"]["param"] == "input"


def test_reasoning_is_an_output_item_of_its_own(client: openai.OpenAI) -> None:
    from tests.utils.thinking_model import ANSWER, REASONING, THINK

    reply = client.responses.create(input=THINK, max_output_tokens=40, **GREEDY)
    assert [item.type for item in reply.output] == ["reasoning", "message"]
    assert reply.output[0].content[0].text == REASONING and reply.output_text == ANSWER
    events = list(client.responses.create(input=THINK, max_output_tokens=40, stream=True,
                                          **GREEDY))
    thought = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
    said = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert (thought, said) == (REASONING, ANSWER)
    assert [item.type for item in events[-1].response.output] == ["reasoning", "message"]
