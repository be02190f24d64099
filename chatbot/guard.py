"""What a hostile web page must not do through the user's browser: the Host allow-list
(DNS rebinding) and cross-site writes (CSRF), checked before anything else runs.

Runs outside the body-limit middleware, so it sees the Content-Type the client sent (that
middleware reads `curl -d` bodies as JSON on the bearer-key routes).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from services.errors import APIError

SAFE = {"GET", "HEAD", "OPTIONS"}
# Where a browser tells us a request came from another site (Fetch Metadata).
SAME_SITE = {"same-origin", "none"}


class BrowserGuard:
    """ASGI middleware.

    Args:
        hosts: allowed Host names (without port); None allows any.
        multipart: paths (a predicate) that take multipart uploads instead of JSON.
    """

    def __init__(self, app: Any, hosts: list[str] | None,
                 multipart: Callable[[str], bool]) -> None:
        self.app = app
        self.hosts = hosts
        self.multipart = multipart

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers") or []}
        error = self.refusal(scope, headers)
        if error is not None:
            body = json.dumps(error.body()).encode()
            await send({"type": "http.response.start", "status": error.status,
                        "headers": [(b"content-type", b"application/json"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        await self.app(scope, receive, send)

    def refusal(self, scope: dict, headers: dict[str, str]) -> APIError | None:
        host = headers.get("host", "")
        if self.hosts is not None and _hostname(host) not in self.hosts:
            return APIError(400, "This host name is not allowed (CHATBOT_ALLOWED_HOSTS).",
                            code="host_not_allowed")
        if scope.get("method", "GET") in SAFE:
            return None
        site = headers.get("sec-fetch-site")
        origin = headers.get("origin")
        if (site is not None and site not in SAME_SITE) or \
                (origin is not None and urlsplit(origin).netloc.lower() != host.lower()):
            return APIError(403, "Cross-site requests are refused.", code="cross_site_request")
        path = scope.get("path", "")
        if path.startswith("/api/"):
            kind = headers.get("content-type", "").split(";")[0].strip().lower()
            has_body = headers.get("content-length", "0") != "0" or \
                "transfer-encoding" in headers
            allowed = "multipart/form-data" if self.multipart(path) else "application/json"
            if (has_body or kind) and kind != allowed:
                return APIError(415, f"Send the body as {allowed}.",
                                code="unsupported_media_type")
        return None


def _hostname(host: str) -> str:
    """The Host header without its port ([::1]:5000 -> [::1])."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[:host.find("]") + 1]
    return host.rsplit(":", 1)[0] if ":" in host else host
