"""The base every service's `create_app(settings)` starts from."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from fastapi import Depends, FastAPI, Request, Response
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse, JSONResponse, PlainTextResponse

from .auth import require_api_key
from .config import ServiceSettings
from .errors import install_error_handlers
from .guard import BrowserGuard
from .limits import BodyLimitMiddleware
from .metrics import Metrics, MetricsMiddleware

log = logging.getLogger(__name__)


def base_app(
    settings: ServiceSettings,
    service: str,
    lifespan: Any = None,
    limit_for: Callable[[str], int] | None = None,
    multipart: Callable[[str], bool] = lambda _path: False,
) -> FastAPI:
    """A FastAPI app with the envelope, browser guard, body limit, metrics, `/metrics`, `/docs`.

    The browser guard (outermost) refuses foreign Host names, cross-site writes and bodies
    that are not JSON (multipart where `multipart(path)`), before anything reads the body.

    `/metrics`, `/docs` and `/openapi.json` need the API key like the API does (when one
    is set); `/redoc` is not served.

    Args:
        settings: the service's settings; kept on `app.state.settings`.
        service: the service's name, used in metrics and health.
        lifespan: the service's lifespan context, if any.
        limit_for: body limit per path; defaults to `settings.max_body_bytes` everywhere.
        multipart: the upload paths, which take multipart/form-data instead of JSON.
    """
    # FastAPI's own docs routes take no dependencies: these are added below, behind the key.
    app = FastAPI(title=f"TinyLLM {service}", lifespan=lifespan, docs_url=None,
                  redoc_url=None, openapi_url=None)
    app.state.settings = settings
    app.state.metrics = Metrics(service)
    install_error_handlers(app)
    app.add_middleware(MetricsMiddleware, metrics=app.state.metrics)
    app.add_middleware(BodyLimitMiddleware,
                       limit_for=limit_for or (lambda _path: settings.max_body_bytes))

    if settings.host_list() is None and settings.allowed_hosts.strip() != "*":
        log.warning("%s is unset: any Host name is answered; set it to the names clients "
                    "use, against DNS rebinding", settings.env_name("allowed_hosts"))
    # Added last, so it runs first.
    app.add_middleware(BrowserGuard, hosts=settings.host_list(), multipart=multipart,
                       hosts_setting=settings.env_name("allowed_hosts"))

    keyed = [Depends(require_api_key)]

    @app.get("/metrics", tags=["ops"], dependencies=keyed, response_class=PlainTextResponse)
    async def metrics(request: Request) -> Response:
        """Prometheus text format."""
        return request.app.state.metrics.render()

    @app.get("/openapi.json", include_in_schema=False, dependencies=keyed)
    async def openapi(request: Request) -> JSONResponse:
        """The OpenAPI schema of the service."""
        return JSONResponse(request.app.openapi())

    @app.get("/docs", include_in_schema=False, dependencies=keyed)
    async def docs(request: Request) -> HTMLResponse:
        """Swagger UI over /openapi.json."""
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(openapi_url=f"{root}/openapi.json", title=app.title)

    return app
