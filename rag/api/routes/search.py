"""POST /search: nearest chunks of one or several collections."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from services.auth import require_api_key

from ...store import filter_conditions
from ..deps import EmbedderDep, StoreDep

router = APIRouter(prefix="/search", tags=["search"], dependencies=[Depends(require_api_key)])


class SearchRequest(BaseModel):
    query: str = Field(..., min_length=1, max_length=10_000, description="What to look for.")
    collections: list[str] = Field(..., min_length=1, max_length=20,
                                   description="Collections to search.")
    k: int = Field(5, ge=1, le=100, description="How many chunks to return.")
    filter: dict[str, Any] | None = Field(
        None, description="Optional: document (name or list), document_id (id or list), "
                          "page (int or {gte, lte}).")


@router.post("")
async def search(body: SearchRequest, request: Request, store: StoreDep,
                 embedder: EmbedderDep) -> dict[str, Any]:
    """The k best chunks over the given collections, best first."""
    start = time.perf_counter()
    conditions = filter_conditions(body.filter)
    names = list(dict.fromkeys(body.collections))
    for name in names:
        await asyncio.to_thread(store.check_compatible, name, embedder.name, embedder.dim)
    vector = (await asyncio.to_thread(embedder.encode, [body.query]))[0].tolist()
    results: list[dict[str, Any]] = []
    for name in names:
        results += await asyncio.to_thread(store.search, name, vector, body.k, conditions)
    results.sort(key=lambda r: r["score"], reverse=True)
    request.app.state.search_seconds.observe(time.perf_counter() - start)
    return {"results": results[:body.k]}
