"""One turn of the browser chat: retrieve, trim, queue, stream, check citations, remember."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

from services.errors import APIError

from .config import Settings
from .llm import LLMClient, deltas, sse_json
from .prompt import check_citations, public_sources, system_prompt
from .queue import Ticket
from .rag_client import RagClient
from .sessions import Session, trim

log = logging.getLogger(__name__)


def llm_view(messages: list[dict]) -> list[dict]:
    """Only role and content go to the model (stored messages carry sources too)."""
    return [{"role": m["role"], "content": m["content"]} for m in messages]


class Turn:
    """Everything prepared before the stream starts, so its errors are plain HTTP errors."""

    def __init__(self, session: Session, text: str, model: str) -> None:
        self.session = session
        self.text = text
        self.model = model
        self.messages: list[dict] = []
        self.notices: list[dict[str, Any]] = []
        self.sources: list[dict[str, Any]] = []
        self.ticket: Ticket | None = None


async def prepare(turn: Turn, settings: Settings, llm: LLMClient, rag: RagClient) -> None:
    """Retrieve sources, build and trim the prompt, and take a place in the queue."""
    session = turn.session
    if session.collection:
        results, notice = await rag.retrieve(turn.text, [session.collection], settings.rag_k)
        turn.sources = public_sources(results)
        if notice:
            turn.notices.append(notice)
        hidden = results
    else:
        hidden = []
    system = {"role": "system", "content": system_prompt(
        settings.persona, settings.agent_name, settings.timezone,
        [{**r, "text": r.get("text", "")} for r in hidden])}
    history = llm_view(session.messages) + [{"role": "user", "content": turn.text}]

    async def count(messages: list[dict]) -> tuple[int, int]:
        return await llm.count_tokens(messages, turn.model)

    turn.messages, dropped, _ = await trim(system, history, count, settings.answer_tokens)
    if dropped:
        turn.notices.append({"code": "history_trimmed",
                             "message": f"{dropped} earlier message(s) no longer fit the "
                                        "model's context and were left out."})
    turn.ticket = llm.queue.enter()


def event(name: str, data: Any) -> dict[str, str]:
    return {"event": name, "data": sse_json(data)}


async def run(turn: Turn, settings: Settings, llm: LLMClient) -> AsyncIterator[dict[str, str]]:
    """The SSE events of one turn; the session's lock is released when it ends."""
    ticket = turn.ticket
    assert ticket is not None
    session = turn.session
    answer: list[str] = []
    finished = False
    try:
        for notice in turn.notices:
            yield event("notice", notice)
        while not ticket.granted.done():
            yield event("status", {"state": "queued", "position": ticket.position()})
            ticket.moved.clear()
            moved = asyncio.ensure_future(ticket.moved.wait())
            await asyncio.wait({ticket.granted, moved}, return_when=asyncio.FIRST_COMPLETED)
            moved.cancel()
        await ticket.wait()
        yield event("status", {"state": "generating", "model": turn.model})
        body = {"model": turn.model, "messages": turn.messages,
                "temperature": settings.temperature, "max_tokens": settings.answer_tokens}
        finish_reason = None
        async with llm.open_stream(ticket, body) as response:
            async for chunk in deltas(response):
                for choice in chunk.get("choices") or []:
                    text = (choice.get("delta") or {}).get("content")
                    if text:
                        answer.append(text)
                        yield event("token", {"text": text})
                    finish_reason = choice.get("finish_reason") or finish_reason
        cleaned, cited, invalid = check_citations("".join(answer), len(turn.sources))
        answer = [cleaned]
        if turn.sources:
            yield event("sources", {"sources": turn.sources, "cited": cited, "invalid": invalid,
                                    "text": cleaned})
        finished = True
        yield event("done", {"finish_reason": finish_reason})
    except APIError as exc:
        log.info("turn failed: %s %s", exc.status, exc.message)
        yield event("error", {**exc.body(), "status": exc.status})
    finally:
        ticket.release()
        if answer:
            session.messages.append({"role": "user", "content": turn.text})
            session.messages.append({"role": "assistant", "content": "".join(answer),
                                     "sources": turn.sources, "stopped": not finished})
        if session.lock.locked():
            session.lock.release()
