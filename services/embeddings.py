"""`POST /v1/embeddings` in the OpenAI schema: the request and the answer, for every service
that serves it (rag and llmserver embed; the chatbot forwards to rag)."""

from __future__ import annotations

import asyncio
import base64
from typing import TYPE_CHECKING, Any, Literal, Protocol

from pydantic import BaseModel, Field

from .errors import APIError

if TYPE_CHECKING:  # the chatbot imports this module and has no numpy
    import numpy as np

MAX_INPUTS = 2048


class EmbeddingsRequest(BaseModel):
    input: str | list[str] = Field(..., description="A text or a list of texts.")
    model: str | None = Field(None, description="The embedding model; the loaded one if unset.")
    encoding_format: Literal["float", "base64"] = Field("float", description="float or base64.")
    dimensions: int | None = Field(None, description="Must equal the model's size if given.")
    user: str | None = Field(None, description="Ignored; accepted for compatibility.")


class TextEmbedder(Protocol):
    """What the answer needs of an embedder (rag's `Embedder` is one)."""

    name: str
    dim: int

    def encode(self, texts: list[str]) -> np.ndarray: ...

    def count_tokens(self, texts: list[str]) -> int: ...


def model_names(name: str, packaged: str) -> set[str]:
    """The names a request may give the model `name`; the packaged one also in lower case."""
    names = {name, f"sentence-transformers/{name}"}
    if name == packaged:
        names.add(packaged.lower())
    return names


def checked_texts(body: EmbeddingsRequest, name: str, dim: int, packaged: str) -> list[str]:
    """The request's texts, or a 404 (another model) or 400 (no or too many texts, another
    size) in the envelope."""
    if body.model is not None and body.model not in model_names(name, packaged):
        raise APIError(404, f"The model '{body.model}' does not exist; this service embeds "
                            f"with '{name}'.", code="model_not_found", param="model")
    texts = [body.input] if isinstance(body.input, str) else body.input
    if not texts or len(texts) > MAX_INPUTS:
        raise APIError(400, f"'input' must hold 1 to {MAX_INPUTS} texts.",
                       code="invalid_value", param="input")
    if body.dimensions is not None and body.dimensions != dim:
        raise APIError(400, f"This model has {dim} dimensions.", code="invalid_value",
                       param="dimensions")
    return texts


async def answer(body: EmbeddingsRequest, embedder: TextEmbedder,
                 packaged: str) -> dict[str, Any]:
    """The OpenAI embeddings list for `body`, encoded in worker threads.

    Args:
        body: the request.
        embedder: the loaded model.
        packaged: the packaged model's name (accepted in lower case too).
    """
    texts = checked_texts(body, embedder.name, embedder.dim, packaged)
    vectors = await asyncio.to_thread(embedder.encode, texts)
    tokens = await asyncio.to_thread(embedder.count_tokens, texts)
    data = [{"object": "embedding", "index": i,
             "embedding": (base64.b64encode(v.tobytes()).decode()
                           if body.encoding_format == "base64" else v.tolist())}
            for i, v in enumerate(vectors)]
    return {"object": "list", "data": data, "model": body.model or embedder.name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}
