"""Fair access: queued streams never cut each other short; a full queue answers 429;
a client that disconnects frees the model at once."""

from __future__ import annotations

import asyncio
import json
import shutil
import time

import httpx
import openai

from llmserver.models import DEFAULT_MODEL, packaged_models

CHAT = "/v1/chat/completions"


def stream_body(max_tokens: int) -> dict:
    return {"messages": [{"role": "user", "content": "Tell me a long story about a dragon."}],
            "max_tokens": max_tokens, "temperature": 0, "stream": True}


async def read_stream(client: httpx.AsyncClient, url: str, max_tokens: int) -> dict:
    async with client.stream("POST", url + CHAT, json=stream_body(max_tokens)) as response:
        if response.status_code != 200:
            await response.aread()
            return {"status": response.status_code, "body": response.json(),
                    "headers": response.headers}
        pieces, finish, done, chunks = [], None, False, 0
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                done = True
                break
            chunk = json.loads(data)
            assert "error" not in chunk, chunk
            choice = chunk["choices"][0]
            pieces.append(choice["delta"].get("content") or "")
            chunks += bool(choice["delta"].get("content"))
            finish = choice["finish_reason"] or finish
        return {"status": 200, "text": "".join(pieces), "finish": finish, "done": done,
                "chunks": chunks}


def test_two_streams_complete_and_third_gets_429(llm_server) -> None:
    async def main() -> list[dict]:
        async with httpx.AsyncClient(timeout=120) as client:
            first = asyncio.create_task(read_stream(client, llm_server.url, 60))
            await asyncio.sleep(0.3)  # the first is generating
            second = asyncio.create_task(read_stream(client, llm_server.url, 60))
            await asyncio.sleep(0.3)  # the second waits in the queue (bound 1)
            third = await read_stream(client, llm_server.url, 60)
            return [await first, await second, third]

    first, second, third = asyncio.run(main())
    for result in (first, second):
        assert result["status"] == 200 and result["done"]
        assert result["finish"] == "length"  # ran to max_tokens: never cut short
        assert result["chunks"] >= 55  # about one chunk a token: the whole answer arrived
    assert third["status"] == 429
    assert third["body"]["error"]["code"] == "queue_full"
    assert int(third["headers"]["retry-after"]) > 0


def test_disconnect_frees_model_within_a_second(llm_server) -> None:
    with httpx.Client(timeout=60) as client:
        with client.stream("POST", llm_server.url + CHAT, json=stream_body(1500)) as response:
            lines = response.iter_lines()
            seen = 0
            for line in lines:
                seen += line.startswith("data:")
                if seen >= 5:
                    break
        # the connection is closed here, mid-answer
        started = time.perf_counter()
        with client.stream("POST", llm_server.url + CHAT, json=stream_body(3)) as response:
            for line in response.iter_lines():
                if line.startswith("data:"):
                    first_token = time.perf_counter() - started
                    break
    assert first_token < 1.0, f"first token after {first_token:.2f}s"


def test_non_stream_disconnect_frees_model(llm_server) -> None:
    body = {**stream_body(1500), "stream": False}
    try:
        httpx.post(llm_server.url + CHAT, json=body, timeout=0.5)
    except httpx.ReadTimeout:
        pass
    started = time.perf_counter()
    reply = httpx.post(llm_server.url + CHAT, json={**body, "max_tokens": 2}, timeout=30)
    assert reply.status_code == 200
    assert time.perf_counter() - started < 1.5


def test_gguf_dropped_into_models_dir_is_served(llm_server, models_dir) -> None:
    client = openai.OpenAI(base_url=llm_server.url + "/v1", api_key="x", max_retries=0)
    assert "my-copy" not in [m.id for m in client.models.list().data]
    shutil.copy(packaged_models()[DEFAULT_MODEL], models_dir / "My-Copy.gguf")
    try:
        assert "my-copy" in [m.id for m in client.models.list().data]
        reply = client.chat.completions.create(
            model="my-copy", messages=[{"role": "user", "content": "Say hi"}], max_tokens=5,
            temperature=0)
        assert reply.model == "my-copy" and reply.choices[0].message.content
        # and back to the default, swapping models on demand
        reply = client.chat.completions.create(
            model=DEFAULT_MODEL, messages=[{"role": "user", "content": "Say hi"}], max_tokens=2)
        assert reply.model == DEFAULT_MODEL
    finally:
        (models_dir / "My-Copy.gguf").unlink()
