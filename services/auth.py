"""Optional bearer API key, checked on every route but /health."""

from __future__ import annotations

import secrets

from fastapi import Request

from .errors import APIError


async def require_api_key(request: Request) -> None:
    """Refuse the request with 401 unless it carries the configured bearer key."""
    key = request.app.state.settings.api_key
    if key is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise APIError(401, "Missing API key: send 'Authorization: Bearer <key>'.",
                       code="missing_api_key")
    if not secrets.compare_digest(token.strip().encode(), key.get_secret_value().encode()):
        raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")
