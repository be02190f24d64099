"""The OpenAI-compatible endpoint: `/v1/models`, `/v1/chat/completions`, `/v1/completions`.

Keys: the service key (CHATBOT_API_KEY) or a user's personal key.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse
from sse_starlette import EventSourceResponse

from services.http import STREAMED_RESPONSES

from ... import commands, gateway, pipeline
from ...auth import requester, require_gateway_key
from ...store import prompts as stored_prompts
from ..deps import DbDep, LLMDep, RagDep, SettingsDep
from .attachments import refuse_private

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(require_gateway_key)])


@router.get("/models")
async def models(llm: LLMDep) -> dict[str, Any]:
    """llmserver's model list."""
    return await llm.models()


async def _answer(req: gateway.ChatRequest | gateway.CompletionRequest, request: Request,
                  settings: SettingsDep, llm: LLMDep, rag: RagDep,
                  db: DbDep) -> JSONResponse | EventSourceResponse:
    for name in req.collection_list():
        refuse_private(name)
    command = gateway.command_of(req)
    if command is not None and isinstance(req, gateway.ChatRequest):
        outcome = await commands.run(command, gateway.command_state(req, settings), llm, rag)
        reply = gateway.command_reply(outcome, req.stream)
        if isinstance(reply, dict):
            return JSONResponse(reply)
        return EventSourceResponse(_sent(reply), ping=10)
    edited = None  # the admin's prompts, from this request on
    if req.collection_list() or req.chat_tools:
        edited = await db.run(stored_prompts.edited)
    prepared = await gateway.prepare(req, settings, rag, edited, requester(request))
    if not req.stream:
        return JSONResponse(await gateway.complete(llm, prepared))
    pipeline.admit(llm, prepared.requester)
    return EventSourceResponse(pipeline.detached(gateway.stream(llm, prepared)), ping=10,
                               send_timeout=settings.stream_idle_s)


@router.post("/chat/completions", response_model=None,
             responses=STREAMED_RESPONSES)
async def chat_completions(req: gateway.ChatRequest, request: Request, settings: SettingsDep,
                           llm: LLMDep, rag: RagDep,
                           db: DbDep) -> JSONResponse | EventSourceResponse:
    """Chat completion (stream or not); `collection(s)` adds sources from rag."""
    return await _answer(req, request, settings, llm, rag, db)


@router.post("/completions", response_model=None, responses=STREAMED_RESPONSES)
async def completions(req: gateway.CompletionRequest, request: Request, settings: SettingsDep,
                      llm: LLMDep, rag: RagDep, db: DbDep) -> JSONResponse | EventSourceResponse:
    """Text completion (stream or not), as llmserver serves it."""
    return await _answer(req, request, settings, llm, rag, db)


async def _sent(lines: list[str]) -> AsyncIterator[dict[str, str]]:
    for data in lines:
        yield {"data": data}
