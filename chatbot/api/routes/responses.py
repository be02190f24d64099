"""`/v1/responses`: OpenAI's Responses API through the gateway's chat path (fair queue,
sources from rag), with each response kept for its requester in the database."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request
from fastapi.responses import JSONResponse
from pydantic import Field, ValidationError
from sse_starlette import EventSourceResponse

from services.errors import APIError
from services.http import STREAMED_RESPONSES
from services.openai_responses import Messages, ResponsesRequest, Shaper, input_messages, to_chat

from ... import gateway, pipeline
from ...auth import requester, require_gateway_key
from ...store import prompts as stored_prompts
from ...store import responses as stored
from ..deps import DbDep, LLMDep, RagDep, SettingsDep
from .attachments import refuse_private

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(require_gateway_key)])
CHAT_KEYS = {"id", "object", "created", "model", "choices", "usage"}
ResponseId = Annotated[str, Path(min_length=1, max_length=64)]


class GatewayResponsesRequest(ResponsesRequest):
    collection: str | None = Field(None, description="Answer from this rag collection.")
    collections: list[str] | None = Field(None, description="Answer from these collections.")
    rag_k: int | None = Field(None, ge=1, le=20, description="Chunks retrieved per question.")


def _not_found(response_id: str, param: str | None = None) -> APIError:
    return APIError(404, f"No response with id '{response_id}'.", code="not_found", param=param)


@router.post("/responses", response_model=None, responses=STREAMED_RESPONSES)
async def create_response(body: GatewayResponsesRequest, request: Request,
                          settings: SettingsDep, llm: LLMDep, rag: RagDep,
                          db: DbDep) -> JSONResponse | EventSourceResponse:
    """A model response (stream or not); `previous_response_id` continues one of this
    key's kept responses; `collection(s)` adds sources from rag."""
    owner = requester(request)
    history: Messages = []
    if body.previous_response_id:
        previous_id = body.previous_response_id
        row = await db.run(lambda s: stored.get(s, owner, previous_id))
        if row is None:
            raise _not_found(previous_id, "previous_response_id")
        history = list(row.messages)
    chat_body = to_chat(body, history)
    chat_body.update(body.model_dump(include={"collection", "collections", "rag_k"},
                                     exclude_none=True))
    try:
        req = gateway.ChatRequest.model_validate(chat_body)
    except ValidationError as exc:
        raise APIError(400, f"Invalid request: {exc.errors()[0]['msg']}.",
                       code="invalid_value", param="input") from exc
    for name in req.collection_list():
        refuse_private(name)
    edited = await db.run(stored_prompts.edited) if req.collection_list() else None
    prepared = await gateway.prepare(req, settings, rag, edited, owner)
    shaper = Shaper(body, prepared.body["model"])
    turn = history + input_messages(body)

    async def keep() -> None:
        if body.store is not False:
            messages, response = turn + shaper.messages(), shaper.response(shaper.status())
            await db.run(lambda s: stored.save(s, owner, messages, response))

    if not body.stream:
        chat = await gateway.complete(llm, prepared)
        shaper.model = chat.get("model") or shaper.model
        answer = {**shaper.whole(chat), **{k: v for k, v in chat.items() if k not in CHAT_KEYS}}
        await keep()
        return JSONResponse(answer)
    pipeline.admit(llm, owner)
    return EventSourceResponse(pipeline.detached(_events(llm, prepared, shaper, keep)),
                               ping=10, send_timeout=settings.stream_idle_s)


async def _events(llm: Any, prepared: pipeline.Prepared, shaper: Shaper,
                  keep: Any) -> AsyncIterator[dict[str, str]]:
    async def chunks() -> AsyncIterator[dict[str, Any]]:
        try:
            async for ev in pipeline.generate(llm, prepared, prepared.guard):
                if ev.kind == "chunk":
                    yield ev.data
        except APIError as exc:
            yield exc.body()

    ended = ""
    async for event in shaper.events(chunks()):
        ended = event["type"]
        yield {"event": ended, "data": json.dumps(event)}
    if ended in ("response.completed", "response.incomplete"):
        await keep()


@router.get("/responses/{response_id}")
async def get_response(response_id: ResponseId, request: Request, db: DbDep) -> dict[str, Any]:
    """A kept response of this key's."""
    owner = requester(request)
    row = await db.run(lambda s: stored.get(s, owner, response_id))
    if row is None:
        raise _not_found(response_id)
    return dict(row.response)


@router.delete("/responses/{response_id}")
async def delete_response(response_id: ResponseId, request: Request, db: DbDep) -> dict[str, Any]:
    """Forget a kept response (a later `previous_response_id` to it is a 404)."""
    owner = requester(request)
    if not await db.run(lambda s: stored.delete(s, owner, response_id)):
        raise _not_found(response_id)
    return {"id": response_id, "object": "response", "deleted": True}
