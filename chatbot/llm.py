"""Calls to llmserver (or any OpenAI-compatible server): models, tokenize, streamed chat."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx

from services.errors import APIError
from services.http import UpstreamTimeout, UpstreamUnavailable, request_json, upstream_api_error

from .queue import FairQueue, Ticket, Upstream

log = logging.getLogger(__name__)
NAME = "llmserver"
FALLBACK_N_CTX = 2048


def root_of(url: str) -> str:
    """llmserver's /tokenize sits beside /v1, not under it."""
    return url[:-3] if url.endswith("/v1") else url


class LLMClient:
    """One httpx client shared by every request, plus the queue that guards the models."""

    def __init__(self, queue: FairQueue, api_key: str | None, timeout_s: float) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.queue = queue
        self.http = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(
            timeout_s, connect=2.0), limits=httpx.Limits(max_connections=200))

    async def aclose(self) -> None:
        await self.http.aclose()

    def _live(self) -> list[Upstream]:
        live = [u for u in self.queue.upstreams if not u.is_down()]
        if not live:
            raise UpstreamUnavailable(NAME, "every model server is down; retrying soon")
        return live

    async def _any(self, method: str, path: str, root: bool = False, **kw: Any) -> Any:
        """Send a light request (not a generation) to the first reachable upstream."""
        last: APIError | None = None
        for upstream in self._live():
            base = root_of(upstream.url) if root else upstream.url
            try:
                return await request_json(self.http, NAME, method, base + path, timeout=10, **kw)
            except UpstreamUnavailable as exc:
                self.queue.mark_down(upstream)
                last = exc
        assert last is not None
        raise last

    async def learn_slots(self) -> None:
        """Ask each auto upstream how many generations it runs at once (`slots` in its
        /v1/models, as llmserver advertises; 1 for a server that says nothing)."""
        async def learn(upstream: Upstream) -> None:
            try:
                body = await request_json(self.http, NAME, "GET", upstream.url + "/models",
                                          timeout=5)
            except APIError:
                return  # down or refusing: keep what we knew; the queue handles down
            models = body.get("data") if isinstance(body, dict) else None
            slots = [m.get("slots") for m in models or [] if isinstance(m, dict)]
            known = [n for n in slots if isinstance(n, int) and not isinstance(n, bool) and n > 0]
            self.queue.set_concurrency(upstream, max(known) if known else 1)

        await asyncio.gather(*(learn(u) for u in self.queue.upstreams if u.auto))

    async def follow_slots(self, every_s: float) -> None:
        """Learn the slots now and again every `every_s` (a restarted upstream is followed)."""
        while True:
            await self.learn_slots()
            await asyncio.sleep(every_s)

    async def models(self) -> dict[str, Any]:
        return await self._any("GET", "/models")

    async def count_tokens(self, messages: list[dict], model: str) -> tuple[int, int]:
        """Tokens of `messages` under the model's chat template, and the model's n_ctx.

        Servers without llmserver's /tokenize get an estimate (4 characters a token).
        """
        try:
            body = await self._any("POST", "/tokenize", root=True,
                                   json={"model": model, "messages": messages})
            return int(body["count"]), int(body.get("n_ctx") or FALLBACK_N_CTX)
        except APIError as exc:
            # Any server without /tokenize: our envelope or its own 404 (e.g. {"detail": ...}).
            status = getattr(exc, "upstream_status", exc.status)
            if status not in (404, 405):
                raise
            chars = sum(len(str(m.get("content", ""))) + 8 for m in messages)
            return chars // 4 + 1, FALLBACK_N_CTX

    @asynccontextmanager
    async def open_stream(self, ticket: Ticket, endpoint: str,
                          body: dict) -> AsyncIterator[httpx.Response]:
        """POST a streaming completion (`endpoint`: /chat/completions or /completions) to the
        ticket's upstream; errors before the first byte raise typed errors (and a refused
        connection marks the upstream down)."""
        upstream = ticket.upstream
        assert upstream is not None
        request = self.http.build_request("POST", upstream.url + endpoint,
                                          json={**body, "stream": True})
        try:
            response = await self.http.send(request, stream=True)
        except httpx.TimeoutException as exc:
            raise UpstreamTimeout(NAME) from exc
        except httpx.TransportError as exc:
            self.queue.mark_down(upstream)
            raise UpstreamUnavailable(NAME, type(exc).__name__) from exc
        try:
            if response.status_code >= 400:
                await response.aread()
                if response.status_code == 503:
                    self.queue.mark_down(upstream)  # still loading: try another meanwhile
                raise upstream_api_error(NAME, response)
            self.queue.mark_up(upstream)
            yield response
        finally:
            await response.aclose()


async def raw_events(response: httpx.Response) -> AsyncIterator[str]:
    """The `data:` payloads of an upstream stream, unparsed (the gateway passes them through).

    Stops at [DONE]; an in-stream error event raises it as APIError.
    """
    try:
        async for line in response.aiter_lines():
            if not line.startswith("data:"):
                continue
            data = line[5:].strip()
            if data == "[DONE]":
                return
            if data.startswith('{"error"'):
                err = json.loads(data)["error"] or {}
                raise APIError(502, str(err.get("message", "upstream error")),
                               code=err.get("code") or "upstream_error",
                               type=err.get("type") or "upstream_error")
            yield data
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(NAME) from exc
    except httpx.TransportError as exc:
        raise APIError(502, f"{NAME} stream broke off: {type(exc).__name__}",
                       code="upstream_stream_broken") from exc


def sse_json(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
