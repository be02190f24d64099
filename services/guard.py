"""What a hostile web page must not do through a user's browser: reach a service under a
foreign Host name (DNS rebinding) or write to it cross-site (CSRF). Checked before anything
else runs, in every service.

Bodies are JSON only (multipart on upload routes): the content types a page may post
without a CORS preflight (text/plain, form-encoded, multipart elsewhere) get a 415. One
exception keeps `curl -d` working with a key: a request that carries an Authorization header
(which no page can add without a preflight) has a text/plain or form-encoded body read as
JSON, as OpenAI's API does.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from .errors import APIError

SAFE = {"GET", "HEAD", "OPTIONS"}
# Where a browser tells us a request came from another site (Fetch Metadata).
SAME_SITE = {"same-origin", "none"}
# What `curl -d` sends; read as JSON when the request carries a key.
LOOSE = {"", "application/x-www-form-urlencoded", "text/plain"}


class BrowserGuard:
    """ASGI middleware.

    Args:
        hosts: allowed Host names (without port); None allows any.
        multipart: paths (a predicate) that take multipart uploads instead of JSON.
        hosts_setting: the setting named in the host refusal, e.g. RAG_ALLOWED_HOSTS.
    """

    def __init__(self, app: Any, hosts: list[str] | None,
                 multipart: Callable[[str], bool], hosts_setting: str = "ALLOWED_HOSTS") -> None:
        self.app = app
        self.hosts = hosts
        self.multipart = multipart
        self.hosts_setting = hosts_setting

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1").lower(): v.decode("latin-1")
                   for k, v in scope.get("headers") or []}
        error = self.refusal(scope, headers)
        if error is not None:
            await error.send(send)
            return
        if scope.get("method") in ("POST", "PUT", "PATCH") and \
                _kind(headers) != "application/json" and \
                not self.multipart(scope.get("path", "")):
            rest = [(k, v) for k, v in scope.get("headers") or [] if k.lower() != b"content-type"]
            scope = {**scope, "headers": rest + [(b"content-type", b"application/json")]}
        await self.app(scope, receive, send)

    def refusal(self, scope: dict, headers: dict[str, str]) -> APIError | None:
        host = headers.get("host", "")
        if self.hosts is not None and _hostname(host) not in self.hosts:
            return APIError(400, f"This host name is not allowed ({self.hosts_setting}).",
                            code="host_not_allowed")
        if scope.get("method", "GET") in SAFE:
            return None
        site = headers.get("sec-fetch-site")
        origin = headers.get("origin")
        if (site is not None and site not in SAME_SITE) or \
                (origin is not None and urlsplit(origin).netloc.lower() != host.lower()):
            return APIError(403, "Cross-site requests are refused.", code="cross_site_request")
        path = scope.get("path", "")
        kind = _kind(headers)
        has_body = headers.get("content-length", "0") != "0" or "transfer-encoding" in headers
        allowed = "multipart/form-data" if self.multipart(path) else "application/json"
        keyed = "authorization" in headers and allowed == "application/json" and kind in LOOSE
        if (has_body or kind) and kind != allowed and not keyed:
            return APIError(415, f"Send the body as {allowed} (Content-Type: {allowed}).",
                            code="unsupported_media_type")
        return None


def _kind(headers: dict[str, str]) -> str:
    return headers.get("content-type", "").split(";")[0].strip().lower()


def _hostname(host: str) -> str:
    """The Host header without its port ([::1]:5000 -> [::1])."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[:host.find("]") + 1]
    return host.rsplit(":", 1)[0] if ":" in host else host
