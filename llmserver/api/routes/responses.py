"""`POST /v1/responses`: OpenAI's Responses API, answered through chat completions.

Responses are kept in memory for `previous_response_id` (the last hour, 32 MB of text at
most, lost on restart); the chatbot keeps them per account in its database.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from sse_starlette import EventSourceResponse

from services.auth import require_api_key
from services.errors import APIError, error_body
from services.http import STREAMED_RESPONSES
from services.openai_responses import (
    Messages,
    ResponsesRequest,
    Shaper,
    input_messages,
    sse,
    to_chat,
)

from ...inference import Streamed
from ...schemas import ChatCompletionRequest
from ..deps import InferenceDep
from .openai import gone

router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(require_api_key)])


class Kept:
    """The conversations behind recent responses, oldest dropped first."""

    def __init__(self, max_chars: int = 32_000_000, max_age_s: float = 3600) -> None:
        self.max_chars, self.max_age_s = max_chars, max_age_s
        self.items: OrderedDict[str, tuple[float, int, Messages]] = OrderedDict()
        self.chars = 0

    def get(self, response_id: str) -> Messages | None:
        self._expire()
        item = self.items.get(response_id)
        return None if item is None else list(item[2])

    def put(self, response_id: str, messages: Messages) -> None:
        size = sum(len(str(m.get("content") or "")) + len(str(m.get("tool_calls") or ""))
                   for m in messages)
        self.items[response_id] = (time.monotonic(), size, messages)
        self.chars += size
        self._expire()

    def _expire(self) -> None:
        oldest = time.monotonic() - self.max_age_s
        while self.items:
            at, size, _ = next(iter(self.items.values()))
            if at >= oldest and self.chars <= self.max_chars:
                return
            self.chars -= self.items.popitem(last=False)[1][1]


def kept_of(request: Request) -> Kept:
    state = request.app.state
    if not hasattr(state, "responses_kept"):
        state.responses_kept = Kept()
    return state.responses_kept


def chat_request(body: ResponsesRequest, history: Messages) -> ChatCompletionRequest:
    try:
        return ChatCompletionRequest.model_validate(to_chat(body, history))
    except ValidationError as exc:
        first = exc.errors()[0]
        raise APIError(400, f"Invalid request: {first['msg']}.", code="invalid_value",
                       param="input") from exc


@router.post("/responses", responses=STREAMED_RESPONSES)
async def create_response(body: ResponsesRequest, request: Request,
                          inference: InferenceDep) -> Any:
    """A model response (stream or not): text, JSON by `text.format`, or function calls.

    `previous_response_id` continues a conversation this server answered in the last hour.
    """
    kept = kept_of(request)
    history: Messages = []
    if body.previous_response_id:
        found = kept.get(body.previous_response_id)
        if found is None:
            raise APIError(404, f"Previous response '{body.previous_response_id}' not found "
                           "(llmserver keeps responses for an hour, in memory).",
                           code="not_found", param="previous_response_id")
        history = found
    chat = chat_request(body, history)
    turn = history + input_messages(body)  # what the next turn continues from
    shaper = Shaper(body, chat.model or inference.settings.default_model)
    run = await inference.chat_run(chat, gone(request), frames=False)
    keep = body.store is not False
    if not isinstance(run, Streamed):
        shaper.model = run["model"]
        answer = shaper.whole(run)
        if keep:
            kept.put(shaper.id, turn + shaper.messages())
        return answer
    return EventSourceResponse(_stream(run, shaper, kept if keep else None, turn), ping=15,
                               sep="\n")


async def _stream(run: Streamed, shaper: Shaper, kept: Kept | None,
                  turn: Messages) -> AsyncIterator[bytes]:
    async def chunks() -> AsyncIterator[dict[str, Any]]:
        try:
            async for chunk in run.chunks:
                assert isinstance(chunk, dict)  # frames=False: no ready-made bytes
                yield chunk
        except APIError as exc:
            yield exc.body()
        except Exception:  # noqa: BLE001 - the stream has started: an error event
            yield error_body("Generation failed.", "server_error", "generation_failed")

    try:
        ended = ""
        async for event in shaper.events(chunks()):
            ended = event["type"]
            yield sse(event)
        if kept is not None and ended in ("response.completed", "response.incomplete"):
            kept.put(shaper.id, turn + shaper.messages())
    finally:
        run.job.close()
