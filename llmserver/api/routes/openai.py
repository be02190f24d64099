"""The OpenAI-compatible endpoints: models, chat completions, text completions."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Request

from services.auth import require_api_key
from services.errors import APIError
from services.http import STREAMED_RESPONSES

from ... import backend, model_settings, modelfile
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
    try:
        per_model = model_settings.load(settings.models_dir)
    except ValueError:
        per_model = {}  # loading that model says what is wrong with the file
    data = []
    for name, path in sorted(models.items()):
        own = per_model.get(name)
        # Served at the shorter of the server's context and the one the model was trained on.
        trained = context_length(path)
        wanted = own.n_ctx if own and own.n_ctx else settings.n_ctx
        n_ctx = min(wanted, trained) if trained else wanted
        info = modelfile.cached(path)
        data.append({"id": name, "object": "model", "created": int(path.stat().st_mtime),
                     "owned_by": "tinyllm", "context_length": n_ctx, "n_ctx": n_ctx,
                     "slots": inference.pool.slots_of(name) or guess,
                     "size_bytes": path.stat().st_size,
                     "quantization": info.quant if info else None,
                     "parameters": info.parameters if info else None,
                     "loaded": name in inference.pool.loaded,
                     "settings": own.model_dump(exclude_none=True) if own else {}})
    return {"object": "list", "data": data}


@router.delete("/models/{name}")
async def delete_model(name: Annotated[str, Path(max_length=256)], inference: InferenceDep,
                       settings: SettingsDep) -> dict[str, Any]:
    """Remove a model file from the models folder (409 while it answers a request; the
    packaged models cannot be removed)."""
    _, path = inference.pool.resolve(name)
    if path.absolute().parent != settings.models_dir.absolute():
        raise APIError(403, f"The model '{name}' comes with the installation and cannot be "
                       "removed.", code="model_packaged", param="name")
    await inference.pool.forget(name)
    path.unlink(missing_ok=True)
    return {"id": name, "object": "model", "deleted": True}


@router.post("/chat/completions", responses=STREAMED_RESPONSES)
async def chat_completions(body: ChatCompletionRequest, request: Request,
                           inference: InferenceDep) -> Any:
    """Chat completion, streamed as SSE when `stream` is true."""
    return await inference.chat(body, gone(request))


@router.post("/completions", responses=STREAMED_RESPONSES)
async def completions(body: CompletionRequest, request: Request, inference: InferenceDep) -> Any:
    """Text completion, streamed as SSE when `stream` is true."""
    return await inference.complete(body, gone(request))
