"""The base every service's `create_app(settings)` starts from."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, Request, Response

from .auth import require_api_key
from .config import ServiceSettings
from .errors import install_error_handlers
from .limits import BodyLimitMiddleware
from .metrics import Metrics, MetricsMiddleware


def base_app(
    settings: ServiceSettings,
    service: str,
    lifespan: Any = None,
    limit_for: Callable[[str], int] | None = None,
) -> FastAPI:
    """A FastAPI app with the envelope, body limit, metrics and `/metrics` installed.

    Args:
        settings: the service's settings; kept on `app.state.settings`.
        service: the service's name, used in metrics and health.
        lifespan: the service's lifespan context, if any.
        limit_for: body limit per path; defaults to `settings.max_body_bytes` everywhere.
    """
    app = FastAPI(title=f"TinyLLM {service}", lifespan=lifespan, docs_url="/docs",
                  redoc_url=None)
    app.state.settings = settings
    app.state.metrics = Metrics(service)
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(BodyLimitMiddleware,
                       limit_for=limit_for or (lambda _path: settings.max_body_bytes))

    @app.get("/metrics", tags=["ops"], dependencies=[Depends(require_api_key)])
    async def metrics(request: Request) -> Response:
        """Prometheus text format."""
        return request.app.state.metrics.render()

    return app
