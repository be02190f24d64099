"""A scripted OpenAI-compatible upstream: streams a fixed answer (a hostile one, one citing a
source that was not retrieved), so tests can force what no real model says on demand."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, StreamingResponse

from tests.utils.procs import free_port


def fake_app(answer: str, delay_s: float = 0.0, stats: dict | None = None,
             chunks: list[str] | None = None) -> FastAPI:
    """`stats`, if given, counts the chunks sent and notes a client that hung up early;
    `chunks`, if given, are streamed as they are instead of `answer` word by word."""
    app = FastAPI()
    app.state.answer = answer
    app.state.chunks = chunks
    stats = stats if stats is not None else {}
    stats.update(chunks=0, closed_early=False, requests=[])

    @app.get("/health")
    async def health() -> dict:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict:
        return {"object": "list", "data": [{"id": "scripted", "object": "model"}]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> StreamingResponse | JSONResponse:
        body = await request.json()
        stats["requests"].append(body)

        async def events() -> AsyncIterator[bytes]:
            words = app.state.answer.split(" ")
            texts = app.state.chunks or [w if i == 0 else " " + w for i, w in enumerate(words)]
            sent_all = False
            try:
                async for piece in pieces(texts):
                    yield piece
                sent_all = True
            finally:  # a client hanging up cancels the stream while it sleeps
                stats["closed_early"] = not sent_all

        async def pieces(texts: list[str]) -> AsyncIterator[bytes]:
            for text in texts:
                chunk = {"id": "chatcmpl-fake", "object": "chat.completion.chunk",
                         "created": int(time.time()), "model": body.get("model"),
                         "choices": [{"index": 0, "delta": {"content": text},
                                      "finish_reason": None}]}
                yield f"data: {json.dumps(chunk)}\n\n".encode()
                stats["chunks"] += 1
                await asyncio.sleep(delay_s)
            last = {"id": "chatcmpl-fake", "object": "chat.completion.chunk", "created": 0,
                    "model": body.get("model"),
                    "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]}
            yield f"data: {json.dumps(last)}\n\ndata: [DONE]\n\n".encode()

        return StreamingResponse(events(), media_type="text/event-stream")

    return app


@contextmanager
def fake_llm(answer: str, delay_s: float = 0.0, stats: dict | None = None,
             chunks: list[str] | None = None) -> Iterator[str]:
    """Serve the scripted upstream on a free loopback port; yield its base URL (no /v1)."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(fake_app(answer, delay_s, stats, chunks),
                                           host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
