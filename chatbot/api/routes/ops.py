"""Health of the chatbot: ready when some llmserver answers; rag is reported, not required."""

from __future__ import annotations

import asyncio
import json

import httpx
from fastapi import APIRouter
from fastapi.responses import JSONResponse

from services.health import OK, health_response

from ...llm import root_of
from ..deps import LLMDep, RagDep

router = APIRouter(tags=["ops"])


async def _probe(http: httpx.AsyncClient, url: str) -> str:
    try:
        response = await http.get(root_of(url) + "/health", timeout=2)
    except httpx.HTTPError:
        return "unreachable"
    return OK if response.status_code == 200 else f"status {response.status_code}"


@router.get("/health")
async def health(llm: LLMDep, rag: RagDep) -> JSONResponse:
    """200 when at least one llmserver is ready; rag down only degrades answers."""
    urls = [u.url for u in llm.queue.upstreams]
    states = await asyncio.gather(*(_probe(llm.http, url) for url in urls), rag.health())
    llm_states, rag_state = dict(zip(urls, states[:-1], strict=False)), states[-1]
    overall = OK if OK in llm_states.values() else "unavailable"
    response = health_response("chatbot", {"llmserver": overall})
    body = json.loads(bytes(response.body))
    body["upstreams"] = llm_states
    body["optional"] = {"rag": rag_state}
    body["queue"] = llm.queue.snapshot()
    return JSONResponse(body, status_code=response.status_code,
                        headers={k: v for k, v in response.headers.items()
                                 if k.lower() == "retry-after"})
