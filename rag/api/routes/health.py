"""GET /health: ready when the embedder is loaded and Qdrant answers."""

from __future__ import annotations

import asyncio

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from services.health import OK, health_response

router = APIRouter(tags=["ops"])


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """200 when ready; 503 while the model loads or when Qdrant is down."""
    state = request.app.state
    if state.embedder is not None:
        embedder = OK
    else:
        embedder = "failed" if state.embedder_error else "loading"
    store = OK if state.store is not None and await asyncio.to_thread(state.store.ping) \
        else "down"
    return health_response("rag", {"embedder": embedder, "qdrant": store})
