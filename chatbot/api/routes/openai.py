"""The OpenAI-compatible gateway: `/v1/models` and `/v1/chat/completions` through the queue."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse

from services.auth import require_api_key

from ... import gateway
from ..deps import LLMDep, RagDep, SettingsDep

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(require_api_key)])


@router.get("/models")
async def models(llm: LLMDep) -> dict[str, Any]:
    """llmserver's model list."""
    return await llm.models()


@router.post("/chat/completions", response_model=None)
async def chat_completions(req: gateway.ChatRequest, settings: SettingsDep, llm: LLMDep,
                           rag: RagDep) -> JSONResponse | EventSourceResponse:
    """Chat completion (stream or not); `collection(s)` adds sources from rag."""
    prepared = await gateway.prepare(req, settings, rag)
    stack = AsyncExitStack()
    try:
        response = await gateway.open_upstream(llm, prepared, stack)
        if req.stream:
            return EventSourceResponse(gateway.stream(response, prepared, stack), ping=10)
        try:
            return JSONResponse(await gateway.complete(response, prepared))
        finally:
            await stack.aclose()
    except BaseException:
        await stack.aclose()
        raise
