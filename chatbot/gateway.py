"""The OpenAI-compatible `/v1/chat/completions` through the fair queue, with optional sources."""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.errors import APIError

from .config import Settings
from .llm import LLMClient, deltas, raw_events, sse_json
from .prompt import check_citations, public_sources, sources_block
from .rag_client import RagClient


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str = Field(..., pattern="^(system|user|assistant|tool|developer)$")
    content: str | list[dict[str, Any]] | None = None


class ChatRequest(BaseModel):
    """OpenAI's chat request; unknown fields go to llmserver as they are."""

    model_config = ConfigDict(extra="allow")
    model: str | None = None
    messages: list[Message] = Field(..., min_length=1)
    stream: bool = False
    collection: str | None = Field(None, description="Answer from this rag collection.")
    collections: list[str] | None = Field(None, description="Answer from these collections.")


def text_of(message: Message) -> str:
    if isinstance(message.content, list):
        return " ".join(str(p.get("text", "")) for p in message.content if isinstance(p, dict))
    return message.content or ""


class Prepared:
    def __init__(self, body: dict[str, Any], sources: list[dict], notices: list[dict],
                 include_usage: bool) -> None:
        self.body = body
        self.sources = sources
        self.notices = notices
        self.include_usage = include_usage


async def prepare(req: ChatRequest, settings: Settings, rag: RagClient) -> Prepared:
    """Retrieve sources for the last user message and put them in a system message."""
    collections = list(req.collections or []) + ([req.collection] if req.collection else [])
    body = req.model_dump(exclude={"collection", "collections"}, exclude_none=True)
    body["model"] = req.model or settings.default_model
    include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    if not req.stream:
        body["stream_options"] = {"include_usage": True}  # to report usage when gathering
    sources: list[dict] = []
    notices: list[dict] = []
    if collections:
        question = next((text_of(m) for m in reversed(req.messages) if m.role == "user"), "")
        results, notice = await rag_search(rag, question, collections, settings.rag_k)
        if notice:
            notices.append(notice)
        sources = public_sources(results)
        if results:
            block = {"role": "system", "content": sources_block(results)}
            msgs = body["messages"]
            at = 1 if msgs and msgs[0]["role"] == "system" else 0
            body["messages"] = msgs[:at] + [block] + msgs[at:]
    return Prepared(body, sources, notices, include_usage)


async def rag_search(rag: RagClient, question: str, collections: list[str],
                     k: int) -> tuple[list[dict], dict | None]:
    return await rag.retrieve(question, collections, k)


async def open_upstream(llm: LLMClient, prepared: Prepared, stack: AsyncExitStack) -> Any:
    """Wait in the queue and open the upstream stream; failures here are HTTP errors."""
    ticket = llm.queue.enter()
    stack.callback(ticket.release)
    await ticket.wait()
    return await stack.enter_async_context(llm.open_stream(ticket, prepared.body))


def extras(prepared: Prepared, content: str) -> tuple[str, dict[str, Any]]:
    """The checked answer and the extra response fields (sources, invalid citations, notices)."""
    out: dict[str, Any] = {}
    if prepared.sources:
        content, cited, invalid = check_citations(content, len(prepared.sources))
        out["sources"] = [{**s, "cited": s["n"] in cited} for s in prepared.sources]
        out["invalid_citations"] = invalid
    if prepared.notices:
        out["notices"] = prepared.notices
    return content, out


async def complete(response: Any, prepared: Prepared) -> dict[str, Any]:
    """Gather the upstream stream into one `chat.completion` object."""
    parts: list[str] = []
    finish_reason, usage, first = None, None, None
    async for chunk in deltas(response):
        first = first or chunk
        usage = chunk.get("usage") or usage
        for choice in chunk.get("choices") or []:
            parts.append((choice.get("delta") or {}).get("content") or "")
            finish_reason = choice.get("finish_reason") or finish_reason
    content, extra = extras(prepared, "".join(parts))
    first = first or {}
    return {"id": first.get("id", f"chatcmpl-{uuid.uuid4().hex}"), "object": "chat.completion",
            "created": first.get("created", int(time.time())),
            "model": first.get("model", prepared.body["model"]),
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content},
                         "finish_reason": finish_reason or "stop", "logprobs": None}],
            "usage": usage, **extra}


async def stream(response: Any, prepared: Prepared,
                 stack: AsyncExitStack) -> AsyncIterator[dict[str, str]]:
    """Pass chunks through as they are; add a last chunk with the sources; errors as an SSE
    error event and no [DONE]."""
    parts: list[str] = []
    last: dict[str, Any] = {}
    try:
        async for data in raw_events(response):
            if prepared.sources:  # only then is the text needed (to check citations)
                last = json.loads(data)
                for choice in last.get("choices") or []:
                    parts.append((choice.get("delta") or {}).get("content") or "")
            yield {"data": data}
        _, extra = extras(prepared, "".join(parts))
        if extra:
            yield {"data": sse_json({"id": last.get("id"), "object": "chat.completion.chunk",
                                     "created": last.get("created"), "model": last.get("model"),
                                     "choices": [], **extra})}
        yield {"data": "[DONE]"}
    except APIError as exc:
        yield {"data": sse_json(exc.body())}
    finally:
        await stack.aclose()
