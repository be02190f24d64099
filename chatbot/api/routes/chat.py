"""The browser chat's API: session history, new chat, models, and a streamed turn (SSE)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field
from sse_starlette import EventSourceResponse

from services.errors import APIError

from ... import chat as engine
from ...config import Settings
from ...sessions import Session, SessionStore
from ..deps import LLMDep, RagDep, SessionsDep, SettingsDep

router = APIRouter(prefix="/api", tags=["chat"])
COOKIE = "tinyllm_session"


class ChatIn(BaseModel):
    message: str = Field(..., min_length=1)
    model: str | None = Field(None, max_length=200)


class SessionIn(BaseModel):
    model: str | None = Field(None, max_length=200)
    collection: str | None = Field(None, max_length=200)


def _session(request: Request, response: Response, store: SessionStore,
             settings: Settings) -> Session:
    session = store.get(request.cookies.get(COOKIE))
    if session is None:
        session = store.create()
    response.set_cookie(COOKIE, session.id, httponly=True, samesite="strict",
                        secure=settings.cookie_secure, max_age=int(settings.session_ttl_s))
    return session


def _view(session: Session, settings: Settings) -> dict[str, Any]:
    return {"agent": settings.agent_name, "model": session.model or settings.default_model,
            "collection": session.collection,
            "messages": [{k: v for k, v in m.items()} for m in session.messages]}


@router.get("/session")
async def get_session(request: Request, response: Response, store: SessionsDep,
                      settings: SettingsDep) -> dict[str, Any]:
    """This browser's conversation (created on first visit)."""
    return _view(_session(request, response, store, settings), settings)


@router.patch("/session")
async def update_session(body: SessionIn, request: Request, response: Response,
                         store: SessionsDep, settings: SettingsDep) -> dict[str, Any]:
    """Pick the model and the collection (empty string: none) for the next answers."""
    session = _session(request, response, store, settings)
    if body.model is not None:
        session.model = body.model or None
    if body.collection is not None:
        session.collection = body.collection or None
    return _view(session, settings)


@router.post("/session/new")
async def new_chat(request: Request, response: Response, store: SessionsDep,
                   settings: SettingsDep) -> dict[str, Any]:
    """Start over: forget the conversation, keep model and collection."""
    session = _session(request, response, store, settings)
    async with session.lock:
        session.messages.clear()
    return _view(session, settings)


@router.get("/models")
async def models(llm: LLMDep) -> dict[str, Any]:
    """The models llmserver serves (for the picker)."""
    return await llm.models()


@router.post("/chat")
async def chat(body: ChatIn, request: Request, response: Response, store: SessionsDep,
               settings: SettingsDep, llm: LLMDep, rag: RagDep) -> EventSourceResponse:
    """Answer one message as SSE events: notice, status, token, sources, done or error."""
    if len(body.message) > settings.max_message_chars:
        raise APIError(413, f"The message is longer than {settings.max_message_chars} "
                            "characters.", code="message_too_long", param="message")
    session = _session(request, response, store, settings)
    if len(session.messages) + 2 > settings.max_messages:
        raise APIError(400, f"This chat reached {settings.max_messages} messages; start a "
                            "new chat.", code="too_many_messages")
    try:
        # A stopped answer may take a moment to wind down; a parallel turn must not interleave.
        await asyncio.wait_for(session.lock.acquire(), timeout=3)
    except asyncio.TimeoutError:
        raise APIError(409, "An answer is still being written in this chat.",
                       code="answer_in_progress") from None
    turn = engine.Turn(session, body.message, body.model or session.model
                       or settings.default_model)
    try:
        await engine.prepare(turn, settings, llm, rag)
    except BaseException:
        session.lock.release()
        raise
    headers = {k: v for k, v in response.headers.items() if k.lower() == "set-cookie"}
    return EventSourceResponse(engine.run(turn, settings, llm), headers=headers, ping=10)
