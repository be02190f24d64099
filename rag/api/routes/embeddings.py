"""POST /v1/embeddings in the OpenAI schema."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from services.auth import require_api_key
from services.embeddings import EmbeddingsRequest, answer

from ...embedder import PACKAGED_NAME
from ..deps import EmbedderDep

router = APIRouter(prefix="/v1", tags=["embeddings"], dependencies=[Depends(require_api_key)])


@router.post("/embeddings")
async def embeddings(body: EmbeddingsRequest, embedder: EmbedderDep) -> dict[str, Any]:
    """Unit-length embeddings; texts past the model's max sequence are truncated."""
    return await answer(body, embedder, PACKAGED_NAME)
