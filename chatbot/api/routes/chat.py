"""The browser chat's API: one streamed turn (SSE) and the model list."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, model_validator
from sse_starlette import EventSourceResponse

from services.errors import APIError

from ... import chat as engine
from ... import commands, pipeline
from ...auth import requester
from ...store import conversations as repo
from ..deps import DbDep, LLMDep, RagDep, SettingsDep, UserDep
from .attachments import refuse_private

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
    rag_k: int | None = Field(None, ge=1, le=commands.MAX_K,
                              description="Chunks a question (a new chat; set by /rag).")
    think: bool | None = Field(None, description="Show a thinking model's reasoning (a new "
                                                 "chat; set by /think).")

    @model_validator(mode="after")
    def _one_action(self) -> ChatIn:
        if self.regenerate == (self.message is not None):
            raise ValueError("send either a message or regenerate")
        if (self.edit is not None or self.regenerate) and self.conversation_id is None:
            raise ValueError("edit and regenerate need a conversation_id")
        return self


@router.get("/commands")
async def command_list(_: UserDep) -> dict[str, Any]:
    """The chat commands, for the hint list under the message box."""
    return {"data": [{"usage": usage, "description": what}
                     for usage, what in commands.COMMANDS]}


@router.get("/models")
async def models(_: UserDep, llm: LLMDep) -> dict[str, Any]:
    """The models llmserver serves (for the picker)."""
    return await llm.models()


@router.post("/chat", response_class=EventSourceResponse,
             responses={200: {"content": {"text/event-stream": {}}}})
async def chat(body: ChatIn, request: Request, user: UserDep, settings: SettingsDep,
               db: DbDep, llm: LLMDep, rag: RagDep) -> EventSourceResponse:
    """Answer as SSE events: conversation, notice, status, token, sources, done or error."""
    if body.message is not None and len(body.message) > settings.max_message_chars:
        raise APIError(413, f"The message is longer than {settings.max_message_chars} "
                            "characters.", code="message_too_long", param="message")
    model, collection = body.model, body.collection
    options = {k: v for k, v in (("rag_k", body.rag_k), ("think", body.think)) if v is not None}
    if body.conversation_id is not None:
        conv = await db.run(lambda s: repo.get(s, user.id, body.conversation_id or ""))
        if conv is None:
            raise APIError(404, "No such conversation.", code="conversation_not_found")
        model = model or conv.model
        collection = conv.collection if collection is None else collection
        options = {**(conv.options or {}), **options}
    refuse_private(collection)  # a conversation's own files: only through that conversation
    if body.edit is None and commands.is_command(body.message):
        state = commands.State(model or settings.default_model, collection or None,
                               int(options.get("rag_k") or settings.rag_k),
                               bool(options.get("think", True)))
        outcome = await commands.run(body.message or "", state, llm, rag)
        if outcome.changed and body.conversation_id is not None:
            new = outcome.state
            await db.run(lambda s: _store_state(s, user.id, body.conversation_id or "", new))
        return EventSourceResponse(_command_events(outcome))
    who = requester(request)
    pipeline.admit(llm, who)  # a full queue or no model server: a plain 429/503, nothing taken
    turn = engine.TurnRequest(user.id, body.conversation_id, body.message, body.edit,
                              model or settings.default_model, collection or None,
                              {k: options[k] for k in ("rag_k", "think") if k in options}, who)
    return EventSourceResponse(pipeline.detached(engine.run_turn(turn, settings, db, llm, rag)),
                               ping=10, send_timeout=settings.stream_idle_s)


def _store_state(s: Any, user_id: int, conversation_id: str, state: commands.State) -> None:
    conv = repo.get(s, user_id, conversation_id)
    if conv is not None:
        repo.update_fields(s, conv, model=state.model, collection=state.collection,
                           options={**(conv.options or {}), "rag_k": state.rag_k,
                                    "think": state.think})


async def _command_events(outcome: commands.Outcome) -> AsyncIterator[dict[str, str]]:
    """A command's answer as the chat's SSE events: one `command` event, then done."""
    yield engine.event("command", {"command": outcome.command, "text": outcome.text,
                                   "action": outcome.action, "state": outcome.state.view()})
    yield engine.event("done", {"finish_reason": "command"})
