"""Prometheus metrics: one registry per app (on app.state), request counters for all."""

from __future__ import annotations

import time
from typing import Any

from fastapi import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)


class Metrics:
    """The registry of one app plus the HTTP metrics every service exports."""

    def __init__(self, service: str) -> None:
        self.registry = CollectorRegistry()
        self.service = service
        self.requests = Counter(
            "http_requests_total", "HTTP requests answered.", ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "http_request_duration_seconds", "Time to the response headers.", ["route"],
            registry=self.registry,
        )

    def counter(self, name: str, doc: str, labels: tuple[str, ...] = ()) -> Counter:
        return Counter(name, doc, list(labels), registry=self.registry)

    def histogram(self, name: str, doc: str, **kw: Any) -> Histogram:
        return Histogram(name, doc, registry=self.registry, **kw)

    def render(self) -> Response:
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class MetricsMiddleware:
    """Count each request by its route template (bounded labels), as pure ASGI.

    Pure ASGI rather than BaseHTTPMiddleware, which hides client disconnects from routes
    and buffers streaming responses.
    """

    def __init__(self, app: Any, metrics: Metrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def tracking_send(message: dict) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                name = getattr(scope.get("route"), "path", "unmatched")
                self.metrics.latency.labels(name).observe(time.perf_counter() - start)
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        finally:
            name = getattr(scope.get("route"), "path", "unmatched")
            self.metrics.requests.labels(scope["method"], name, str(status)).inc()
