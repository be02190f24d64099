"""Endpoints beyond the OpenAI schema: token counting (used by the chatbot to trim)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends

from services.auth import require_api_key
from services.errors import APIError

from ...schemas import TokenizeRequest
from ..deps import InferenceDep

router = APIRouter(tags=["extras"], dependencies=[Depends(require_api_key)])


@router.post("/tokenize")
async def tokenize(body: TokenizeRequest, inference: InferenceDep) -> dict[str, Any]:
    """Count the tokens of `content`, or of `messages` rendered with the chat template."""
    if (body.content is None) == (body.messages is None):
        raise APIError(400, "Send exactly one of 'content' or 'messages'.", code="invalid_value")
    inference.pool.resolve(body.model)  # 404 before loading anything
    # The lease keeps the model loaded until the count is done (no unload can race it).
    model = await inference.pool.acquire(body.model)
    try:
        if body.messages is not None:
            messages = [{"role": m.role, "content": m.text()} for m in body.messages]
            count = await asyncio.to_thread(model.count_chat, messages)
        else:
            count = await asyncio.to_thread(model.count_text, body.content or "")
    finally:
        inference.pool.release(model)
    return {"model": model.name, "count": count, "n_ctx": model.n_ctx}
