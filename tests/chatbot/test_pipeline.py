"""The pipeline's hold on the model: taken only once a stream runs, given back when the
upstream answer ends even if the client stops reading, and on a client that leaves."""

from __future__ import annotations

import asyncio
import socket
import time

import httpx
import pytest

from chatbot import pipeline
from chatbot.llm import LLMClient
from chatbot.queue import FairQueue, Upstream
from tests.chatbot.conftest import chatbot_env
from tests.chatbot.fake_llm import fake_llm
from tests.utils.procs import ServiceProcess

WORDS = 40_000
LONG = " ".join(f"word{i}" for i in range(WORDS))  # megabytes of SSE: fills socket buffers


def test_a_stream_never_started_takes_no_slot() -> None:
    async def main() -> None:
        queue = FairQueue([Upstream("http://127.0.0.1:9/v1", 1)], 4, 1.0)
        llm = LLMClient(queue, None, 5)
        events = pipeline.generate(llm, pipeline.Prepared("/chat/completions", {}))
        assert queue.snapshot()["upstreams"][0]["in_flight"] == 0 and not queue.waiting
        await events.aclose()  # what a response that never started does with its body
        assert queue.snapshot()["upstreams"][0]["in_flight"] == 0 and not queue.waiting
        await llm.aclose()

    asyncio.run(main())


def in_flight(client: httpx.Client) -> int:
    return client.get("/api/admin/status").json()["queue"]["upstreams"][0]["in_flight"]


@pytest.mark.slow
def test_a_client_that_stops_reading_does_not_hold_the_model() -> None:
    with fake_llm(LONG) as llm, ServiceProcess("chatbot", "CHATBOT_", env=chatbot_env(
            llm, CHATBOT_DEFAULT_MODEL="scripted", CHATBOT_STREAM_IDLE_S="5")) as bot, \
            httpx.Client(base_url=bot.url, timeout=60) as client:
        body = (b'{"messages": [{"role": "user", "content": "go"}], "stream": true}')
        stalled = socket.create_connection(("127.0.0.1", bot.port))
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                        b"Content-Type: application/json\r\nContent-Length: "
                        + str(len(body)).encode() + b"\r\n\r\n" + body)
        assert stalled.recv(64).startswith(b"HTTP/1.1 200")  # then it reads no more
        # The upstream answer ends; the slot comes back although the client reads nothing.
        deadline = time.monotonic() + 60
        while in_flight(client) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert in_flight(client) == 0
        r = client.post("/v1/chat/completions", json={
            "messages": [{"role": "user", "content": "next"}]})
        assert r.status_code == 200 and r.json()["choices"][0]["message"]["content"] == LONG
        # The unread stream is dropped after CHATBOT_STREAM_IDLE_S.
        stalled.settimeout(60)
        received, tail = 0, b""
        time.sleep(6)
        # Read what was sent before the drop through a normal window (through a 4 KB one,
        # TCP takes two minutes over these megabytes).
        stalled.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 22)
        while True:
            chunk = stalled.recv(1 << 20)
            if not chunk:
                break
            received += len(chunk)
            tail = (tail + chunk)[-200:]
        stalled.close()
        # Cut off: the whole stream is one chunk of JSON (100+ bytes) per word, then [DONE].
        assert received < WORDS * 100 and b"[DONE]" not in tail
