"""POST /v1/embeddings in the OpenAI schema."""

from __future__ import annotations

import asyncio
import base64
from typing import Any, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, Field

from services.auth import require_api_key
from services.errors import APIError

from ...embedder import PACKAGED_NAME
from ..deps import EmbedderDep

router = APIRouter(prefix="/v1", tags=["embeddings"], dependencies=[Depends(require_api_key)])
MAX_INPUTS = 2048


class EmbeddingsRequest(BaseModel):
    input: str | list[str] = Field(..., description="A text or a list of texts.")
    model: str | None = Field(None, description="The embedding model; the loaded one if unset.")
    encoding_format: Literal["float", "base64"] = Field("float", description="float or base64.")
    dimensions: int | None = Field(None, description="Must equal the model's size if given.")
    user: str | None = Field(None, description="Ignored; accepted for compatibility.")


@router.post("/embeddings")
async def embeddings(body: EmbeddingsRequest, embedder: EmbedderDep) -> dict[str, Any]:
    """Unit-length embeddings; texts past the model's max sequence are truncated."""
    names = {embedder.name, f"sentence-transformers/{embedder.name}"}
    if embedder.name == PACKAGED_NAME:
        names.add(PACKAGED_NAME.lower())
    if body.model is not None and body.model not in names:
        raise APIError(404, f"The model '{body.model}' does not exist; this service embeds "
                            f"with '{embedder.name}'.", code="model_not_found", param="model")
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts or len(texts) > MAX_INPUTS:
        raise APIError(400, f"'input' must hold 1 to {MAX_INPUTS} texts.",
                       code="invalid_value", param="input")
    if body.dimensions is not None and body.dimensions != embedder.dim:
        raise APIError(400, f"This model has {embedder.dim} dimensions.", code="invalid_value",
                       param="dimensions")
    vectors = await asyncio.to_thread(embedder.encode, texts)
    tokens = await asyncio.to_thread(embedder.count_tokens, texts)
    data = [{"object": "embedding", "index": i,
             "embedding": (base64.b64encode(v.tobytes()).decode()
                           if body.encoding_format == "base64" else v.tolist())}
            for i, v in enumerate(vectors)]
    return {"object": "list", "data": data, "model": body.model or embedder.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
