"""The chatbot app factory: browser UI with accounts and stored conversations, the OpenAI
gateway, the documents proxy."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import Depends, FastAPI, Request, Response

from services.app import base_app

from .api.routes import (
    attachments,
    chat,
    conversations,
    documents,
    embeddings,
    keys,
    openai,
    ops,
    pages,
    prompts,
    responses,
    users,
)
from .api.routes import auth as auth_routes
from .api.routes import shares as share_routes
from .auth import current_user, ensure_bootstrap_users
from .config import Settings
from .llm import LLMClient
from .queue import FairQueue, Upstream
from .rag_client import RagClient
from .store.db import Database

log = logging.getLogger(__name__)
# No inline script or style attribute can run: all JS comes from our own static files.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")


def _is_upload(path: str) -> bool:
    return (path.startswith("/api/collections/") and path.endswith("/documents")) or \
        path == "/api/attachments"


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upstreams = [Upstream(url, c or 1, auto=c is None) for url, c in
                     zip(settings.llm_url_list(), settings.llm_concurrency_list(), strict=True)]
        queue = FairQueue(upstreams, settings.queue_size, settings.retry_down_s,
                          settings.requester_queue)
        llm_key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        rag_key = settings.rag_api_key.get_secret_value() if settings.rag_api_key else None
        app.state.db = Database(settings.database())
        await asyncio.to_thread(app.state.db.migrate)  # the schema is current before serving
        app.state.local_user = await ensure_bootstrap_users(app.state.db, settings)
        app.state.llm = LLMClient(queue, llm_key, settings.request_timeout_s)
        app.state.rag = RagClient(settings.rag_url, rag_key, settings.rag_timeout_s)
        # Only where some URL's concurrency is auto: fixed numbers need no asking.
        follower = asyncio.create_task(app.state.llm.follow_slots(settings.slots_refresh_s)) \
            if any(u.auto for u in upstreams) else None
        try:
            yield
        finally:
            if follower is not None:
                follower.cancel()
                await asyncio.gather(follower, return_exceptions=True)
            await app.state.llm.aclose()
            await app.state.rag.aclose()
            app.state.db.close()

    def limit_for(path: str) -> int:
        return settings.max_upload_bytes if _is_upload(path) else settings.max_body_bytes

    app = base_app(settings, "chatbot", lifespan=lifespan, limit_for=limit_for,
                   multipart=_is_upload)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        if request.url.path.startswith("/api/"):
            response.headers.setdefault("Cache-Control", "no-store")
        return response

    for module in (ops, pages, auth_routes, chat, conversations, attachments, keys, users,
                   prompts, openai, responses, embeddings):
        app.include_router(module.router)
    app.include_router(share_routes.router)  # /s/<token> reads need no login
    # The documents proxy acts with rag's key: only for a logged-in user.
    app.include_router(documents.router, dependencies=[
        Depends(current_user), Depends(attachments.no_private_collection)])
    return app
