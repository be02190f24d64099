"""`POST /v1/embeddings` in the OpenAI schema: rag's vectors, through the gateway's keys."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from services.embeddings import EmbeddingsRequest

from ...auth import require_gateway_key
from ..deps import RagDep, SettingsDep

router = APIRouter(prefix="/v1", tags=["embeddings"],
                   dependencies=[Depends(require_gateway_key)])


@router.post("/embeddings")
async def embeddings(body: EmbeddingsRequest, rag: RagDep,
                     settings: SettingsDep) -> dict[str, Any]:
    """rag's embeddings of `input`; rag's errors pass through, rag down is a 503."""
    return await rag.embeddings(body.model_dump(exclude_none=True), settings.request_timeout_s)
