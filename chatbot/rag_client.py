"""Calls to the rag service: retrieval for answers and the documents page's proxy."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx

from services.errors import APIError
from services.http import (
    UpstreamError,
    UpstreamTimeout,
    UpstreamUnavailable,
    request_json,
    send,
)

log = logging.getLogger(__name__)
NAME = "rag"
RAG_UNAVAILABLE = "rag_unavailable"


class RagClient:
    def __init__(self, base_url: str, api_key: str | None, timeout_s: float) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.base = base_url.rstrip("/")
        self.timeout_s = timeout_s
        self.http = httpx.AsyncClient(headers=headers, timeout=httpx.Timeout(
            timeout_s, connect=2.0))

    async def aclose(self) -> None:
        await self.http.aclose()

    async def call(self, method: str, path: str, **kw: Any) -> Any:
        return await request_json(self.http, NAME, method, self.base + path, **kw)

    async def health(self) -> str:
        try:
            response = await self.http.get(self.base + "/health", timeout=2)
        except httpx.HTTPError:
            return "unreachable"
        return "ok" if response.status_code == 200 else f"status {response.status_code}"

    async def retrieve(self, query: str, collections: list[str],
                       k: int) -> tuple[list[dict[str, Any]], dict[str, str] | None]:
        """Search; rag being down gives no results and a notice instead of an error.

        A missing collection is still the client's error (404).
        """
        try:
            body = await self.call("POST", "/search",
                                   json={"query": query, "collections": collections, "k": k})
            return list(body.get("results", [])), None
        except (UpstreamUnavailable, UpstreamTimeout) as exc:
            log.warning("rag unavailable: %s", exc.message)
        except UpstreamError as exc:
            log.warning("rag failed: %s", exc.message)
        except APIError as exc:
            if exc.status in (400, 404):
                raise
            log.warning("rag refused the search: %s", exc.message)
        return [], {"code": RAG_UNAVAILABLE,
                    "message": "The document service is unavailable; answering without "
                               "your documents."}

    async def embeddings(self, body: dict[str, Any], timeout_s: float) -> Any:
        """rag's `/v1/embeddings` answer; rag's 4xx is raised as is, rag down as a 503."""
        return await self.call("POST", "/v1/embeddings", json=body,
                               timeout=httpx.Timeout(timeout_s, connect=2.0))

    async def forward_upload(self, path: str, body: AsyncIterator[bytes],
                             content_type: str, params: dict[str, str]) -> httpx.Response:
        """Stream a multipart upload through to rag without holding it in memory."""
        return await send(self.http, NAME, "POST", self.base + path, content=body,
                          params=params, headers={"content-type": content_type},
                          timeout=httpx.Timeout(600, connect=2.0))
