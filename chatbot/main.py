"""The chatbot app factory: browser UI, session chat API, OpenAI gateway, documents proxy."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request, Response

from services.app import base_app

from .api.routes import chat, documents, openai, ops, pages
from .config import Settings
from .llm import LLMClient
from .queue import FairQueue, Upstream
from .rag_client import RagClient
from .sessions import SessionStore

# No inline script or style attribute can run: all JS comes from our own static files.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; "
       "form-action 'self'")


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upstreams = [Upstream(url, c) for url, c in
                     zip(settings.llm_url_list(), settings.llm_concurrency_list(), strict=False)]
        queue = FairQueue(upstreams, settings.queue_size, settings.retry_down_s)
        llm_key = settings.llm_api_key.get_secret_value() if settings.llm_api_key else None
        rag_key = settings.rag_api_key.get_secret_value() if settings.rag_api_key else None
        app.state.llm = LLMClient(queue, llm_key, settings.request_timeout_s)
        app.state.rag = RagClient(settings.rag_url, rag_key, settings.rag_timeout_s)
        app.state.sessions = SessionStore(settings.session_ttl_s, settings.max_sessions)
        try:
            yield
        finally:
            await app.state.llm.aclose()
            await app.state.rag.aclose()

    def limit_for(path: str) -> int:
        if path.startswith("/api/collections/") and path.endswith("/documents"):
            return settings.max_upload_bytes
        return settings.max_body_bytes

    app = base_app(settings, "chatbot", lifespan=lifespan, limit_for=limit_for)

    @app.middleware("http")
    async def security_headers(request: Request, call_next: Any) -> Response:
        response: Response = await call_next(request)
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "no-referrer")
        return response

    for module in (ops, pages, chat, documents, openai):
        app.include_router(module.router)
    return app
