"""The rag app factory: store and embedder on app.state, routers, upload body limits."""

from __future__ import annotations

import asyncio
import logging
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from services.app import base_app
from services.http import UpstreamBadResponse, UpstreamUnavailable

from .api.routes import collections, documents, embeddings, health, jobs, search
from .config import Settings
from .embedder import Embedder
from .ingest import Ingestor
from .jobs import Jobs
from .store import Store

log = logging.getLogger(__name__)
UPLOAD_PATH = re.compile(r"^/collections/[^/]+/documents/?$")


def _load_embedder(app: FastAPI, settings: Settings) -> None:
    try:
        embedder = app.state.preloaded or Embedder(
            settings.embedding_model, settings.embedding_batch_size, settings.embedding_device,
            settings.embedding_backend, settings.embedding_onnx_file,
            settings.onnx_cache_dir or settings.data_dir / "onnx", settings.embedding_onnx_int8)
    except Exception as exc:  # reported by /health and 503s rather than crashing the service
        log.exception("could not load the embedding model")
        app.state.embedder_error = str(exc)
        return
    app.state.ingestor = Ingestor(settings, embedder, app.state.store)
    app.state.embedder = embedder


def _cleanup(store: Store, settings: Settings) -> None:
    # Embedded Qdrant has one process (it locks the folder): every incomplete point is a crash's.
    older = None if store.embedded else settings.stale_ingest_s
    try:
        removed = store.cleanup_incomplete(older)
    except Exception:
        log.exception("cleanup of incomplete ingests failed")
        return
    if removed:
        log.warning("removed %d points of ingests that never completed", removed)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    settings: Settings = app.state.settings
    # Hand the GIL over every millisecond (default 5): a search thread then waits less
    # behind the Python work of ingest threads.
    sys.setswitchinterval(0.001)
    app.state.store = await asyncio.to_thread(Store, settings)
    log.info("qdrant: %s (%s)", app.state.store.location, app.state.store.engine)
    await asyncio.to_thread(_cleanup, app.state.store, settings)
    # Load the model off the event loop so /health answers 503 "loading" meanwhile.
    loading = asyncio.create_task(asyncio.to_thread(_load_embedder, app, settings))
    try:
        yield
    finally:
        await app.state.jobs.drain()
        await asyncio.gather(loading, return_exceptions=True)
        if app.state.ingestor is not None:
            app.state.ingestor.close()
        await asyncio.to_thread(app.state.store.close)


def _install_store_errors(app: FastAPI) -> None:
    """Qdrant failures answer 503 (unreachable) or 502 (bad answer), in the envelope."""
    from qdrant_client.http.exceptions import ResponseHandlingException, UnexpectedResponse

    async def unreachable(_: Request, exc: Exception) -> JSONResponse:
        log.warning("qdrant unreachable: %s", exc)
        return UpstreamUnavailable("Qdrant", type(exc).__name__).response()

    async def bad_answer(_: Request, exc: Exception) -> JSONResponse:
        status = getattr(exc, "status_code", 0) or 0
        return UpstreamBadResponse("Qdrant", status, str(getattr(exc, "content", b""))[:300]
                                   ).response()

    app.add_exception_handler(ResponseHandlingException, unreachable)
    app.add_exception_handler(UnexpectedResponse, bad_answer)


def create_app(settings: Settings | None = None, embedder: Embedder | None = None) -> FastAPI:
    """Build the rag app; the model and store are opened by its lifespan.

    Args:
        settings: the service settings; read from the environment if None.
        embedder: an already loaded embedder to share (tests, benchmarks); loaded if None.
    """
    settings = settings or Settings()

    def limit_for(path: str) -> int:
        return settings.max_upload_bytes if UPLOAD_PATH.match(path) else settings.max_body_bytes

    app = base_app(settings, "rag", lifespan=lifespan, limit_for=limit_for,
                   multipart=lambda path: UPLOAD_PATH.match(path) is not None)
    app.state.store = None
    app.state.embedder = None
    app.state.preloaded = embedder
    app.state.embedder_error = None
    app.state.ingestor = None
    app.state.jobs = Jobs(settings.max_jobs, settings.jobs_kept)
    metrics = app.state.metrics
    app.state.ingested = metrics.counter("rag_chunks_ingested_total",
                                         "Chunks embedded and written.", ("collection",))
    app.state.search_seconds = metrics.histogram("rag_search_seconds",
                                                 "Time of one /search (embed + query).")
    _install_store_errors(app)
    for module in (health, collections, documents, jobs, search, embeddings):
        app.include_router(module.router)
    return app
