"""The browser chat's API: one streamed turn (SSE) and the model list."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, model_validator
from sse_starlette import EventSourceResponse

from services.errors import APIError

from ... import chat as engine
from ... import pipeline
from ...store import conversations as repo
from ..deps import DbDep, LLMDep, RagDep, SettingsDep, UserDep

router = APIRouter(prefix="/api", tags=["chat"])


class ChatIn(BaseModel):
    conversation_id: str | None = Field(None, max_length=32,
                                        description="None starts a new conversation.")
    message: str | None = Field(None, min_length=1)
    edit: int | None = Field(None, description="A message of yours to replace (with what "
                                               "follows it) by `message`.")
    regenerate: bool = Field(False, description="Answer the last question again.")
    model: str | None = Field(None, max_length=200)
    collection: str | None = Field(None, max_length=200, description="Empty string: none.")

    @model_validator(mode="after")
    def _one_action(self) -> ChatIn:
        if self.regenerate == (self.message is not None):
            raise ValueError("send either a message or regenerate")
        if (self.edit is not None or self.regenerate) and self.conversation_id is None:
            raise ValueError("edit and regenerate need a conversation_id")
        return self


@router.get("/models")
async def models(_: UserDep, llm: LLMDep) -> dict[str, Any]:
    """The models llmserver serves (for the picker)."""
    return await llm.models()


@router.post("/chat")
async def chat(body: ChatIn, request: Request, user: UserDep, settings: SettingsDep,
               db: DbDep, llm: LLMDep, rag: RagDep) -> EventSourceResponse:
    """Answer as SSE events: conversation, notice, status, token, sources, done or error."""
    if body.message is not None and len(body.message) > settings.max_message_chars:
        raise APIError(413, f"The message is longer than {settings.max_message_chars} "
                            "characters.", code="message_too_long", param="message")
    model, collection = body.model, body.collection
    if body.conversation_id is not None:
        conv = await db.run(lambda s: repo.get(s, user.id, body.conversation_id or ""))
        if conv is None:
            raise APIError(404, "No such conversation.", code="conversation_not_found")
        model = model or conv.model
        collection = conv.collection if collection is None else collection
    pipeline.admit(llm)  # a full queue or no model server: a plain 429/503, nothing taken
    turn = engine.TurnRequest(user.id, body.conversation_id, body.message, body.edit,
                              model or settings.default_model, collection or None)
    return EventSourceResponse(pipeline.detached(engine.run_turn(turn, settings, db, llm, rag)),
                               ping=10, send_timeout=settings.stream_idle_s)
