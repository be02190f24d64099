"""Prometheus metrics: one registry per app (on app.state), request counters for all."""

from __future__ import annotations

import time
from typing import Any

from fastapi import Request, Response
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram
from prometheus_client import generate_latest


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


async def metrics_middleware(request: Request, call_next: Any) -> Response:
    """Count each request by its route template (not raw path, to bound label values)."""
    start = time.perf_counter()
    response = await call_next(request)
    route = request.scope.get("route")
    name = getattr(route, "path", "unmatched")
    metrics: Metrics = request.app.state.metrics
    metrics.requests.labels(request.method, name, str(response.status_code)).inc()
    metrics.latency.labels(name).observe(time.perf_counter() - start)
    return response
