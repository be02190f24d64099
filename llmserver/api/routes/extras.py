"""Endpoints beyond the OpenAI schema: token counting (used by the chatbot to trim)."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends

from services.auth import require_api_key
from services.errors import APIError

from ...schemas import TokenizeRequest
from ..deps import InferenceDep, SettingsDep

router = APIRouter(tags=["extras"], dependencies=[Depends(require_api_key)])


@router.post("/tokenize")
async def tokenize(body: TokenizeRequest, inference: InferenceDep,
                   settings: SettingsDep) -> dict[str, Any]:
    """Count the tokens of `content`, or of `messages` rendered with the chat template."""
    if (body.content is None) == (body.messages is None):
        raise APIError(400, "Send exactly one of 'content' or 'messages'.", code="invalid_value")
    name, _ = inference.pool.resolve(body.model)
    model = inference.pool.loaded.get(name)
    if model is None:
        # Loading needs the model slot; counting on a loaded model does not.
        await inference.gate.acquire()
        try:
            model = await inference.pool.get(name)
        finally:
            inference.gate.release()
    if body.messages is not None:
        messages = [{"role": m.role, "content": m.text()} for m in body.messages]
        count = await asyncio.to_thread(model.count_chat, messages)
    else:
        count = await asyncio.to_thread(model.count_text, body.content or "")
    return {"model": name, "count": count, "n_ctx": settings.n_ctx}
