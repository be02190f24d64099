"""The one pipeline behind the browser chat and the OpenAI gateway.

context (a linked page, or sources from rag) → (the caller builds the prompt) → queue →
stream → check citations (and cite the linked page). The routes adapt input and output
only. The queue slot is taken inside the streaming generator, so a
client that leaves before its stream starts takes nothing; `detached` reads the upstream on
its own task, so a client that stops reading never holds a generation slot.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, TypeVar

from services.errors import APIError
from services.http import UpstreamUnavailable

from . import links, templates
from .config import Settings
from .llm import LLMClient, raw_events
from .loopguard import LoopGuard
from .prompt import check_citations, public_sources, sources_block
from .rag_client import RagClient

T = TypeVar("T")
HEARTBEAT_S = 1.0  # how often a waiting or streaming answer reports that it is alive


@dataclass
class Prepared:
    """What goes upstream and what the answer carries besides the text."""

    endpoint: str  # "/chat/completions" or "/completions"
    body: dict[str, Any]
    sources: list[dict[str, Any]] = field(default_factory=list)  # public, numbered
    notices: list[dict[str, Any]] = field(default_factory=list)
    guard: LoopGuard | None = None  # the gateway's, when its client asks for one
    link_url: str | None = None  # the page a link summary must cite
    requester: str = ""  # whose turn it is in the fair queue (auth.requester)


@dataclass
class Event:
    """queued (data: position), generating, chunk (data: parsed chunk, raw: its JSON),
    loop (data: the repeated passage; the last event: the upstream was closed)."""

    kind: str
    data: Any = None
    raw: str = ""


async def retrieve(rag: RagClient, question: str, collections: list[str], k: int,
                   prepared: Prepared) -> list[dict[str, Any]]:
    """Search the collections; fill the prepared answer's sources and notices.

    Returns:
        the raw results (with their text), for the prompt.
    """
    if not collections:
        return []
    results, notice = await rag.retrieve(question, collections, k)
    if notice:
        prepared.notices.append(notice)
    prepared.sources = public_sources(results)
    return results


@dataclass
class Context:
    """What a turn adds to its prompt: `block` (system text; empty for none), and the linked
    page when that is what it is."""

    block: str = ""
    page: links.Page | None = None


async def context(question: str, collections: list[str], k: int, settings: Settings,
                  rag: RagClient, edited: dict[str, str] | None, prepared: Prepared,
                  follow_links: bool) -> Context:
    """The page a link in the question points at (with `follow_links`; rag is not searched
    then), else the sources of `collections`, each after the admin's prompt for it. Fills
    the prepared answer's link, sources and notices."""
    url = links.link_in(question) if follow_links else None
    if url:
        page = await links.fetch_page(url, settings)
        prepared.link_url = page.url
        if page.truncated:
            prepared.notices.append({"code": "page_truncated", "message": "Only the first "
                                     f"{settings.link_max_chars} characters of the page were "
                                     "read."})
        intro = templates.render("link", edited or {}, settings, url=page.url)
        return Context(links.page_block(page, intro), page)
    results = await retrieve(rag, question, collections, k, prepared)
    if not results:
        return Context()
    return Context(sources_block(results, templates.render("documents", edited or {},
                                                           settings)))


def link_citation(prepared: Prepared, text: str) -> str:
    """What a link summary that does not name its page gets appended: the page."""
    if prepared.link_url and prepared.link_url not in text:
        return f"\n\nSource: {prepared.link_url}"
    return ""


def admit(llm: LLMClient, requester: str) -> None:
    """Refuse now, as a plain HTTP error, what the queue would refuse (takes nothing)."""
    llm.queue.check(requester)


async def generate(llm: LLMClient, prepared: Prepared,
                   guard: LoopGuard | None = None) -> AsyncIterator[Event]:
    """Wait in the queue, then stream the upstream's chunks; the slot is held only in here.

    With a `guard`, an answer that starts looping ends with a `loop` event: the upstream
    connection is closed right there (llmserver stops generating) and the slot freed.
    """
    # A server that refuses the connection is marked down and the answer goes to the next
    # one: a replica that died costs the user nothing while another is up.
    for attempt in range(len(llm.queue.upstreams)):
        ticket = llm.queue.enter(prepared.requester)
        try:
            while not ticket.granted.done():
                yield Event("queued", ticket.position())
                ticket.moved.clear()
                moved = asyncio.ensure_future(ticket.moved.wait())
                await asyncio.wait({ticket.granted, moved}, timeout=HEARTBEAT_S,
                                   return_when=asyncio.FIRST_COMPLETED)
                moved.cancel()
            await ticket.wait()
            if attempt == 0:
                yield Event("generating")
            opened = False
            try:
                async with llm.open_stream(ticket, prepared.endpoint, prepared.body) as response:
                    opened = True
                    async for data in raw_events(response):
                        try:
                            chunk = json.loads(data)
                        except ValueError as exc:
                            raise APIError(502, "llmserver sent a malformed stream chunk.",
                                           code="bad_upstream_response") from exc
                        yield Event("chunk", chunk, data)
                        if guard is not None and guard.feed(chunk_text(chunk)[0]):
                            yield Event("loop", guard.passage)
                            return
            except UpstreamUnavailable:
                if opened or attempt + 1 == len(llm.queue.upstreams):
                    raise
                continue  # marked down by open_stream; the next free server takes it
            return
        finally:
            ticket.release()


def chunk_text(chunk: dict[str, Any]) -> tuple[str, str | None]:
    """The text of a chat or completion chunk and its finish_reason."""
    text, finish = "", None
    for choice in chunk.get("choices") or []:
        if "delta" in choice:
            text += (choice.get("delta") or {}).get("content") or ""
        else:
            text += choice.get("text") or ""
        finish = choice.get("finish_reason") or finish
    return text, finish


def checked(prepared: Prepared, text: str) -> tuple[str, dict[str, Any]]:
    """The answer with invalid citations removed, and what the answer adds: sources (each
    marked cited or not), invalid citations, notices."""
    out: dict[str, Any] = {}
    if prepared.sources:
        text, cited, invalid = check_citations(text, len(prepared.sources))
        out["sources"] = [{**s, "cited": s["n"] in cited} for s in prepared.sources]
        out["invalid_citations"] = invalid
    if prepared.notices:
        out["notices"] = prepared.notices
    return text, out


_END = object()


async def detached(events: AsyncIterator[T]) -> AsyncIterator[T]:
    """Run `events` on a task of its own and hand its items on as they come.

    The producer never waits for the reader: the upstream answer is read to its end and its
    slot freed however slowly the client reads. The reader leaving (Stop, disconnect, a send
    timeout) cancels the producer, which frees the model at once.
    """
    queue: asyncio.Queue[Any] = asyncio.Queue()

    async def pump() -> None:
        try:
            async for item in events:
                queue.put_nowait(item)
        except Exception as exc:  # handed to the reader, raised there
            queue.put_nowait(exc)
        finally:
            queue.put_nowait(_END)

    task = asyncio.create_task(pump())
    try:
        while True:
            item = await queue.get()
            if item is _END:
                return
            if isinstance(item, Exception):
                raise item
            yield item
    finally:
        if not task.done():
            # Cancelled once, and awaited through a shield: awaiting it bare forwards every
            # cancel this reader gets into it, and the response's cancel scope cancels the
            # reader over and over. A second cancel cut httpx's close of the upstream
            # connection short: llmserver went on generating the rest of the answer for
            # nobody, holding its slot, and the pool kept the connection as busy for good.
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.shield(task)
