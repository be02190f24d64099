"""POST /search: best chunks of one or several collections, dense, sparse or hybrid."""

from __future__ import annotations

import asyncio
import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, model_validator

from services.auth import require_api_key

from ... import sparse
from ...store import NAME_RE, filter_conditions
from ..deps import EmbedderDep, StoreDep

router = APIRouter(prefix="/search", tags=["search"], dependencies=[Depends(require_api_key)])
CollectionName = Annotated[str, Field(pattern=NAME_RE.pattern)]
Names = Annotated[list[StrictStr], Field(min_length=1, max_length=100)]


class PageRange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    gte: StrictInt | None = Field(None, description="First page (1-based).")
    lte: StrictInt | None = Field(None, description="Last page.")

    @model_validator(mode="after")
    def _some_bound(self) -> PageRange:
        if self.gte is None and self.lte is None:
            raise ValueError("give gte, lte or both")
        return self


class SearchFilter(BaseModel):
    """Only chunks matching every given key; any other key is refused (400)."""

    model_config = ConfigDict(extra="forbid")
    document: StrictStr | Names | None = Field(None, description="Document name(s).")
    document_id: StrictStr | Names | None = Field(None, description="Document id(s).")
    page: StrictInt | PageRange | None = Field(None, description="A page, or {gte, lte}.")


class SearchRequest(BaseModel):
    query: str = Field(..., min_length=1, max_length=10_000, description="What to look for.")
    collection: CollectionName | None = Field(None, description="One collection to search.")
    collections: list[CollectionName] | None = Field(
        None, min_length=1, max_length=20, description="Collections to search (with or "
                                                       "instead of `collection`).")
    k: int = Field(5, ge=1, le=100, description="How many chunks to return.")
    mode: Literal["hybrid", "dense", "sparse"] = Field(
        "hybrid", description="hybrid: dense and sparse lists fused by reciprocal rank; "
                              "dense: embedding similarity; sparse: BM25-style term match.")
    filter: SearchFilter | None = Field(None, description="Optional: document, document_id, "
                                                          "page.")

    @model_validator(mode="after")
    def _some_collection(self) -> SearchRequest:
        if not self.collection and not self.collections:
            raise ValueError("give 'collection' or 'collections'")
        return self

    def names(self) -> list[str]:
        return list(dict.fromkeys(([self.collection] if self.collection else [])
                                  + (self.collections or [])))


@router.post("")
async def search(body: SearchRequest, request: Request, store: StoreDep,
                 embedder: EmbedderDep) -> dict[str, Any]:
    """The k best chunks over the given collections, best first."""
    start = time.perf_counter()
    conditions = filter_conditions(body.filter)
    names = body.names()
    for name in names:
        await asyncio.to_thread(store.check_compatible, name, embedder.name, embedder.dim)
    dense = None
    if body.mode != "sparse":
        dense = (await asyncio.to_thread(embedder.encode_query, body.query)).tolist()
    terms = sparse.query_vector(body.query) if body.mode != "dense" else None
    results: list[dict[str, Any]] = []
    for name in names:
        results += await asyncio.to_thread(store.search, name, dense, terms, body.k, conditions)
    results.sort(key=lambda r: r["score"], reverse=True)
    request.app.state.search_seconds.observe(time.perf_counter() - start)
    return {"results": results[:body.k], "mode": body.mode}
