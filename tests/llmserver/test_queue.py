"""Fair access: queued streams never cut each other short; a full queue answers 429;
a client that disconnects frees the model at once."""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import threading
import time

import httpx
import openai
import pytest

from llmserver.models import DEFAULT_MODEL, packaged_models
from tests.utils.procs import wait_for

from .helpers import assert_same_or_near_tie, metric

CHAT = "/v1/chat/completions"


def stream_body(max_tokens: int) -> dict:
    return {"messages": [{"role": "user", "content": "Tell me a long story about a dragon."}],
            "max_tokens": max_tokens, "temperature": 0, "stream": True, "logprobs": True,
            "top_logprobs": 2}


def endless_body(max_tokens: int) -> dict:
    """A stream that runs to max_tokens: SmolLM2's end tokens (<|endoftext|> 0, <|im_end|> 2)
    banned, so a story that ends early on a fast machine cannot free the slot by itself."""
    return {**stream_body(max_tokens), "logit_bias": {"0": -100, "2": -100}}


async def read_stream(client: httpx.AsyncClient, url: str, max_tokens: int) -> dict:
    async with client.stream("POST", url + CHAT, json=stream_body(max_tokens)) as response:
        if response.status_code != 200:
            await response.aread()
            return {"status": response.status_code, "body": response.json(),
                    "headers": response.headers}
        pieces, finish, done, chunks, logprobs = [], None, False, 0, []
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
            logprobs += (choice.get("logprobs") or {}).get("content") or []
            finish = choice["finish_reason"] or finish
        return {"status": 200, "text": "".join(pieces), "finish": finish, "done": done,
                "chunks": chunks, "logprobs": logprobs}


def test_streams_fill_the_slots_then_the_queue_then_429(llm_server) -> None:
    """2 slots and a queue of 1 (the session server): two streams run at once, a third
    waits, a fourth is refused; nobody is cut short and all three answers are the same
    text (same prompt, temperature 0)."""
    url = llm_server.url

    async def main() -> list[dict]:
        async with httpx.AsyncClient(timeout=180) as client:
            running = [asyncio.create_task(read_stream(client, url, 60)) for _ in range(2)]
            await wait_async(lambda: metric(url, "llm_slots_busy") == 2, "both slots busy")
            queued = asyncio.create_task(read_stream(client, url, 60))
            await wait_async(lambda: metric(url, "llm_queue_depth") == 1, "one request queued")
            refused = await read_stream(client, url, 60)
            return [*(await asyncio.gather(*running, queued)), refused]

    first, second, third, refused = asyncio.run(main())
    for result in (first, second, third):
        assert result["status"] == 200 and result["done"]
        assert result["finish"] == "length"  # ran to max_tokens: never cut short
    assert first["text"] and len(first["logprobs"]) == 60
    # the third ran in a slot that already held the prompt: same text, or a near-tie
    assert_same_or_near_tie(first["logprobs"], second["logprobs"])
    assert_same_or_near_tie(first["logprobs"], third["logprobs"])
    assert refused["status"] == 429
    assert refused["body"]["error"]["code"] == "queue_full"
    assert int(refused["headers"]["retry-after"]) > 0
    assert metric(url, "llm_queue_depth") == 0


async def wait_async(check, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(check):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def keep_reading(response: httpx.Response, done: threading.Event) -> None:
    """Read a stream until `done`: a client that does not read is paused by back-pressure
    (its slot is then not busy)."""
    for _ in response.iter_lines():
        if done.is_set():
            return


def test_disconnect_frees_its_slot_at_once(llm_server) -> None:
    """Both slots busy with long answers; one client hangs up; the next request takes
    its slot and streams within a second."""
    url = llm_server.url
    done = threading.Event()

    with httpx.Client(timeout=120) as client, httpx.Client(timeout=120) as other:
        with other.stream("POST", url + CHAT, json=endless_body(1500)) as running:
            reader = threading.Thread(target=keep_reading, args=(running, done), daemon=True)
            reader.start()
            with client.stream("POST", url + CHAT, json=endless_body(1500)) as response:
                seen = 0
                for line in response.iter_lines():
                    seen += line.startswith("data:")
                    if seen >= 5:
                        break
            # this connection is closed here, mid-answer; the other one still streams
            wait_for(lambda: metric(url, "llm_slots_busy") == 1, 5, "the slot to be freed")
            started = time.perf_counter()
            with client.stream("POST", url + CHAT, json=stream_body(3)) as response:
                for line in response.iter_lines():
                    if line.startswith("data:"):
                        first_token = time.perf_counter() - started
                        break
            done.set()
            reader.join(timeout=30)
    assert first_token < 1.0, f"first token after {first_token:.2f}s"


def test_non_stream_disconnect_stops_generating(llm_server) -> None:
    url = llm_server.url
    body = {**stream_body(1500), "stream": False}
    before = metric(url, "llm_tokens_generated_total")
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(url + CHAT, json=body, timeout=1.0)
    wait_for(lambda: metric(url, "llm_slots_busy") == 0, 10, "the slot to be freed")
    generated = metric(url, "llm_tokens_generated_total") - before
    assert 0 < generated < 300, generated  # stopped long before the 1500 it asked for
    reply = httpx.post(url + CHAT, json={**body, "max_tokens": 2}, timeout=30)
    assert reply.status_code == 200


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


def test_queued_stream_that_hangs_up_leaves_the_queue_at_once(llm_server) -> None:
    """Both slots busy with long answers; a third streaming request waits in the queue and
    its client hangs up: it leaves the queue (the depth gauge drops) while both long
    answers still run, not when a slot frees."""
    url = llm_server.url
    done = threading.Event()

    with httpx.Client(timeout=120) as a, httpx.Client(timeout=120) as b:
        with a.stream("POST", url + CHAT, json=endless_body(1500)) as first, \
                b.stream("POST", url + CHAT, json=endless_body(1500)) as second:
            readers = [threading.Thread(target=keep_reading, args=(r, done), daemon=True)
                       for r in (first, second)]
            for reader in readers:
                reader.start()
            wait_for(lambda: metric(url, "llm_slots_busy") == 2, 30, "both slots busy")
            body = json.dumps(stream_body(5)).encode()
            host, port = url.removeprefix("http://").split(":")
            queued = socket.create_connection((host, int(port)))
            queued.sendall(f"POST {CHAT} HTTP/1.1\r\nHost: {host}\r\nContent-Type: "
                           f"application/json\r\nContent-Length: {len(body)}\r\n\r\n"
                           .encode() + body)
            wait_for(lambda: metric(url, "llm_queue_depth") == 1, 30, "one request queued")
            queued.close()  # the queued client hangs up before its first byte
            wait_for(lambda: metric(url, "llm_queue_depth") == 0, 3, "the queue to empty")
            assert metric(url, "llm_slots_busy") == 2  # both long answers still run
            done.set()
            for reader in readers:
                reader.join(timeout=30)
