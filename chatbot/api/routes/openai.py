"""The OpenAI-compatible endpoint: `/v1/models`, `/v1/chat/completions`, `/v1/completions`.

Keys: the service key (CHATBOT_API_KEY) or a user's personal key.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse

from ... import gateway, pipeline
from ...auth import require_gateway_key
from ..deps import LLMDep, RagDep, SettingsDep

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(require_gateway_key)])


@router.get("/models")
async def models(llm: LLMDep) -> dict[str, Any]:
    """llmserver's model list."""
    return await llm.models()


async def _answer(req: gateway.ChatRequest | gateway.CompletionRequest, settings: SettingsDep,
                  llm: LLMDep, rag: RagDep) -> JSONResponse | EventSourceResponse:
    prepared = await gateway.prepare(req, settings, rag)
    if not req.stream:
        return JSONResponse(await gateway.complete(llm, prepared))
    pipeline.admit(llm)
    return EventSourceResponse(pipeline.detached(gateway.stream(llm, prepared)), ping=10,
                               send_timeout=settings.stream_idle_s)


@router.post("/chat/completions", response_model=None)
async def chat_completions(req: gateway.ChatRequest, settings: SettingsDep, llm: LLMDep,
                           rag: RagDep) -> JSONResponse | EventSourceResponse:
    """Chat completion (stream or not); `collection(s)` adds sources from rag."""
    return await _answer(req, settings, llm, rag)


@router.post("/completions", response_model=None)
async def completions(req: gateway.CompletionRequest, settings: SettingsDep, llm: LLMDep,
                      rag: RagDep) -> JSONResponse | EventSourceResponse:
    """Text completion (stream or not), as llmserver serves it."""
    return await _answer(req, settings, llm, rag)
