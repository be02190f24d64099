"""The OpenAI-compatible endpoint: `/v1/chat/completions` and `/v1/completions` through the
pipeline (queue, optional sources from rag), passing llmserver's chunks through."""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.errors import APIError

from . import commands, pipeline
from .assemble import Choices
from .config import Settings
from .llm import LLMClient, sse_json
from .rag_client import RagClient


class Message(BaseModel):
    model_config = ConfigDict(extra="allow")
    role: str = Field(..., pattern="^(system|user|assistant|tool|developer)$")
    content: str | list[dict[str, Any]] | None = None


class _Common(BaseModel):
    model_config = ConfigDict(extra="allow")
    model: str | None = None
    stream: bool = False
    collection: str | None = Field(None, description="Answer from this rag collection.")
    collections: list[str] | None = Field(None, description="Answer from these collections.")
    chat_tools: bool = Field(False, description="A TinyLLM chat client (`tinyllm chat`): chat "
                             "commands are answered here and the loop guard is on.")
    rag_k: int | None = Field(None, ge=1, le=20, description="Chunks retrieved per question.")
    think: bool = Field(True, description="With chat_tools: keep a thinking model's reasoning.")

    def collection_list(self) -> list[str]:
        """`collection` and `collections` mean the same: one list of names."""
        return list(self.collections or []) + ([self.collection] if self.collection else [])


class ChatRequest(_Common):
    """OpenAI's chat request; unknown fields go to llmserver as they are."""

    messages: list[Message] = Field(..., min_length=1)


class CompletionRequest(_Common):
    """OpenAI's (legacy) completion request."""

    prompt: str | list[str]


def text_of(message: Message) -> str:
    if isinstance(message.content, list):
        return " ".join(str(p.get("text", "")) for p in message.content if isinstance(p, dict))
    return message.content or ""


async def prepare(req: ChatRequest | CompletionRequest, settings: Settings,
                  rag: RagClient, edited: dict[str, str] | None = None,
                  requester: str = "") -> pipeline.Prepared:
    """The upstream body, with the retrieved sources in it when collections are named, or
    (for TinyLLM's chat clients) the page a link points at; `edited`: the admin's prompts."""
    body = req.model_dump(exclude={"collection", "collections", "chat_tools", "rag_k", "think"},
                          exclude_none=True)
    body["model"] = req.model or settings.default_model
    body.pop("stream", None)
    chat = isinstance(req, ChatRequest)
    prepared = pipeline.Prepared("/chat/completions" if chat else "/completions", body,
                                 requester=requester)
    if req.chat_tools:
        prepared.guard = settings.loop_guard()
    if isinstance(req, ChatRequest):
        question = next((text_of(m) for m in reversed(req.messages) if m.role == "user"), "")
    else:
        question = req.prompt if isinstance(req.prompt, str) else " ".join(req.prompt)
    found = await pipeline.context(question, req.collection_list(), req.rag_k or settings.rag_k,
                                   settings, rag, edited, prepared,
                                   follow_links=req.chat_tools and chat)
    if found.block and chat:
        at = 1 if body["messages"] and body["messages"][0].get("role") == "system" else 0
        body["messages"].insert(at, {"role": "system", "content": found.block})
    elif found.block:
        body["prompt"] = found.block + "\n\n" + question
    return prepared


async def complete(llm: LLMClient, prepared: pipeline.Prepared) -> dict[str, Any]:
    """Gather the stream into one completion object: every choice, tool calls, logprobs
    (usage from the stream's last chunk)."""
    prepared.body["stream_options"] = {"include_usage": True}
    chat = prepared.endpoint == "/chat/completions"
    choices = Choices(chat)
    usage, first = None, None
    stop_reason = None
    async for ev in pipeline.generate(llm, prepared, prepared.guard):
        if ev.kind == "loop":
            stop_reason = "repetition"
        if ev.kind != "chunk":
            continue
        first = first or ev.data
        usage = ev.data.get("usage") or usage
        choices.feed(ev.data)
    text = choices.text(0)
    text += pipeline.link_citation(prepared, text)
    content, extra = pipeline.checked(prepared, text)
    first = first or {}
    built = choices.build({0: content})
    if stop_reason:  # OpenAI clients know only their own finish reasons
        extra["stop_reason"] = stop_reason
        for choice in built:
            choice["finish_reason"] = "stop"
    default_id = ("chatcmpl-" if chat else "cmpl-") + uuid.uuid4().hex
    return {"id": first.get("id", default_id),
            "object": "chat.completion" if chat else "text_completion",
            "created": first.get("created", int(time.time())),
            "model": first.get("model", prepared.body["model"]),
            "choices": built, "usage": usage, **extra}


async def stream(llm: LLMClient, prepared: pipeline.Prepared) -> AsyncIterator[dict[str, str]]:
    """llmserver's chunks as they are, then one chunk with the sources; an error as an SSE
    error event and no [DONE]."""
    parts: list[str] = []
    last: dict[str, Any] = {}
    try:
        async for ev in pipeline.generate(llm, prepared, prepared.guard):
            if ev.kind == "loop":  # a last chunk saying why: OpenAI clients see "stop"
                chat = prepared.endpoint == "/chat/completions"
                yield {"data": sse_json({
                    "id": last.get("id"), "created": last.get("created"),
                    "object": "chat.completion.chunk" if chat else "text_completion",
                    "model": last.get("model"), "stop_reason": "repetition",
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 **({"delta": {}} if chat else {"text": ""})}]})}
            if ev.kind != "chunk":
                continue
            last = ev.data
            if prepared.sources or prepared.link_url:  # the text is needed to check citations
                parts.append(pipeline.chunk_text(ev.data)[0])
            cite = pipeline.link_citation(prepared, "".join(parts)) \
                if pipeline.chunk_text(ev.data)[1] else ""
            if cite:  # the summary cites its page
                parts.append(cite)
                yield {"data": sse_json({**ev.data, "choices": [{
                    "index": 0, "delta": {"content": cite}, "finish_reason": None}]})}
            yield {"data": ev.raw}
        _, extra = pipeline.checked(prepared, "".join(parts))
        if extra:
            kind = "chat.completion.chunk" if prepared.endpoint == "/chat/completions" \
                else "text_completion"
            yield {"data": sse_json({"id": last.get("id"), "object": kind,
                                     "created": last.get("created"), "model": last.get("model"),
                                     "choices": [], **extra})}
        yield {"data": "[DONE]"}
    except APIError as exc:
        yield {"data": sse_json(exc.body())}


def command_of(req: ChatRequest | CompletionRequest) -> str | None:
    """The command a TinyLLM chat client typed as its last message, if any."""
    if not req.chat_tools or not isinstance(req, ChatRequest):
        return None
    last = req.messages[-1]
    text = text_of(last)
    return text if last.role == "user" and commands.is_command(text) else None


def command_state(req: ChatRequest, settings: Settings) -> commands.State:
    collections = req.collection_list()
    return commands.State(req.model or settings.default_model,
                          collections[0] if collections else None,
                          req.rag_k or settings.rag_k, req.think)


def command_reply(outcome: commands.Outcome, stream: bool) -> dict[str, Any] | list[str]:
    """A command's answer as a chat completion (or its chunks), with a `command` field that
    tells the client what changed."""
    head = {"id": "chatcmpl-" + uuid.uuid4().hex, "created": int(time.time()),
            "model": outcome.state.model,
            "command": {"command": outcome.command, "action": outcome.action,
                        "state": outcome.state.view()}}
    if not stream:
        return {**head, "object": "chat.completion", "usage": None, "choices": [{
            "index": 0, "finish_reason": "stop", "logprobs": None,
            "message": {"role": "assistant", "content": outcome.text}}]}
    first = {**head, "object": "chat.completion.chunk", "choices": [{
        "index": 0, "delta": {"role": "assistant", "content": outcome.text},
        "finish_reason": None}]}
    last = {**head, "object": "chat.completion.chunk", "choices": [{
        "index": 0, "delta": {}, "finish_reason": "stop"}]}
    return [sse_json(first), sse_json(last), "[DONE]"]
