"""POST /v1/embeddings in the OpenAI schema, with the packaged embedder."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request

from services.auth import require_api_key
from services.embeddings import EmbeddingsRequest, answer

from ...embedder import PackagedEmbedder

router = APIRouter(prefix="/v1", tags=["embeddings"], dependencies=[Depends(require_api_key)])


def get_embedder(request: Request) -> PackagedEmbedder:
    """The app's embedder holder, made on first use (nothing loads until a request)."""
    state = request.app.state
    holder = getattr(state, "embedder", None)
    if holder is None:
        holder = state.embedder = PackagedEmbedder()
    return holder


EmbedderDep = Annotated[PackagedEmbedder, Depends(get_embedder)]


@router.post("/embeddings")
async def embeddings(body: EmbeddingsRequest, holder: EmbedderDep) -> dict[str, Any]:
    """Unit-length embeddings (all-MiniLM-L6-v2); 503 where its packages are not installed."""
    embedder, packaged = await holder.get()
    return await answer(body, embedder, packaged)
