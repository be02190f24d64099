"""Health of llmserver: 503 while the default model loads, 200 when it can answer."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from ..deps import InferenceDep

router = APIRouter(tags=["ops"])


@router.get("/health")
async def health(inference: InferenceDep) -> JSONResponse:
    """Readiness: the default model's state, plus the queue."""
    from services.health import health_response

    response = health_response("llmserver", {"model": inference.pool.state})
    return response
