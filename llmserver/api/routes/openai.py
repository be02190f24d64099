"""The OpenAI-compatible endpoints: models, chat completions, text completions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Depends, Request

from services.auth import require_api_key
from services.http import STREAMED_RESPONSES

from ... import backend
from ...models import context_length
from ...schemas import ChatCompletionRequest, CompletionRequest
from ..deps import InferenceDep, SettingsDep


def gone(request: Request) -> Callable[[], Awaitable[None]]:
    """A wait for the client to go away: the server's next receive after the body is read
    is its disconnect (as sse-starlette listens for it), so nothing has to poll."""
    async def wait() -> None:
        while (await request.receive())["type"] != "http.disconnect":
            pass
    return wait


router = APIRouter(prefix="/v1", tags=["openai"], dependencies=[Depends(require_api_key)])


@router.get("/models")
async def list_models(inference: InferenceDep, settings: SettingsDep) -> dict[str, Any]:
    """Every servable model: packaged defaults and each GGUF in the models folder.

    `slots`: the generations it runs at once, so a gateway in front (the chatbot) keeps
    that many in flight."""
    models = inference.pool.available()
    guess = settings.slots(gpu=backend.has_gpu())  # a model not loaded yet
    data = []
    for name, path in sorted(models.items()):
        # Served at the shorter of the server's context and the one the model was trained on.
        trained = context_length(path)
        n_ctx = min(settings.n_ctx, trained) if trained else settings.n_ctx
        data.append({"id": name, "object": "model", "created": int(path.stat().st_mtime),
                     "owned_by": "tinyllm", "context_length": n_ctx, "n_ctx": n_ctx,
                     "slots": inference.pool.slots_of(name) or guess})
    return {"object": "list", "data": data}


@router.post("/chat/completions", responses=STREAMED_RESPONSES)
async def chat_completions(body: ChatCompletionRequest, request: Request,
                           inference: InferenceDep) -> Any:
    """Chat completion, streamed as SSE when `stream` is true."""
    return await inference.chat(body, gone(request))


@router.post("/completions", responses=STREAMED_RESPONSES)
async def completions(body: CompletionRequest, request: Request, inference: InferenceDep) -> Any:
    """Text completion, streamed as SSE when `stream` is true."""
    return await inference.complete(body, gone(request))
