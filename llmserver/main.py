"""llmserver's app factory."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from services.app import base_app

from . import backend
from .api.routes import embeddings, extras, openai, ops, responses
from .config import Settings
from .inference import Inference
from .stats import Stats


def create_app(settings: Settings | None = None) -> FastAPI:
    """Build llmserver; the default model loads in the background after start."""
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await asyncio.to_thread(backend.log_summary, settings.n_gpu_layers)
        task = asyncio.create_task(app.state.inference.load_default())
        yield
        task.cancel()
        app.state.inference.pool.close()

    app = base_app(settings, "llmserver", lifespan=lifespan)
    stats = Stats(app.state.metrics)
    app.state.inference = Inference(settings, stats)
    stats.queue_depth.set_function(lambda: app.state.inference.pool.queue_depth)
    stats.slots_busy.set_function(lambda: app.state.inference.pool.slots_busy)
    for module in (ops, openai, responses, extras, embeddings):
        app.include_router(module.router)
    return app
