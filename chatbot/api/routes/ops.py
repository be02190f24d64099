"""Health of the chatbot: ready when some llmserver answers and the database does.

The public learns only ok or not; the details are the admin's (`/api/admin/status`).
"""

from __future__ import annotations

import asyncio

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse
from sqlalchemy import text

from services.health import OK

from ...llm import root_of
from ..deps import DbDep, LLMDep

router = APIRouter(tags=["ops"])


async def probe(http: httpx.AsyncClient, url: str) -> str:
    try:
        response = await http.get(root_of(url) + "/health", timeout=2)
    except httpx.HTTPError:
        return "unreachable"
    return OK if response.status_code == 200 else f"status {response.status_code}"


def _db_ok(session) -> bool:  # noqa: ANN001
    return session.execute(text("SELECT 1")).scalar() == 1


@router.get("/health")
async def health(llm: LLMDep, db: DbDep) -> JSONResponse:
    """200 {"status": "ok"} when a model server and the database answer; 503 otherwise."""
    states = await asyncio.gather(*(probe(llm.http, u.url) for u in llm.queue.upstreams))
    try:
        db_ok = await asyncio.wait_for(db.run(_db_ok), timeout=5)
    except Exception:  # any database failure is simply "not ok" here
        db_ok = False
    ready = OK in states and db_ok
    return JSONResponse({"status": "ok" if ready else "unavailable"},
                        status_code=200 if ready else 503,
                        headers={} if ready else {"Retry-After": "2"})
