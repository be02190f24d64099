"""HTTP client helpers: typed upstream errors, mapped onto the envelope's 502/503/504."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import httpx

from .errors import APIError

MAX_BODY_IN_MESSAGE = 300


def _truncate(text: str) -> str:
    return text if len(text) <= MAX_BODY_IN_MESSAGE else text[:MAX_BODY_IN_MESSAGE] + "..."


class UpstreamError(APIError):
    """Base of the errors raised when another service fails us."""


class UpstreamUnavailable(UpstreamError):
    def __init__(self, name: str, detail: str = "") -> None:
        super().__init__(503, f"{name} is unavailable{': ' + detail if detail else ''}.",
                         code="upstream_unavailable", headers={"Retry-After": "2"})


class UpstreamTimeout(UpstreamError):
    def __init__(self, name: str) -> None:
        super().__init__(504, f"{name} did not answer in time.", code="upstream_timeout")


class UpstreamBadResponse(UpstreamError):
    def __init__(self, name: str, status: int, body: str) -> None:
        super().__init__(502, f"{name} answered {status}: {_truncate(body)}",
                         code="bad_upstream_response")
        self.upstream_status = status


def upstream_api_error(name: str, response: httpx.Response) -> APIError:
    """Turn a non-2xx answer into our error: pass the client's own 4xx/429/503 through."""
    text = response.text
    try:
        err = response.json()["error"]
        message, code, param = err["message"], err.get("code"), err.get("param")
    except (ValueError, KeyError, TypeError):
        return UpstreamBadResponse(name, response.status_code, text)
    status = response.status_code
    if status in (400, 401, 404, 409, 413, 415, 422, 429, 503):
        headers = {k: v for k, v in response.headers.items() if k.lower() == "retry-after"}
        if status == 401:
            # Our client's key was fine; the upstream refused ours: a server-side problem.
            return UpstreamBadResponse(name, status, message)
        return APIError(status, message, code=code, param=param, headers=headers)
    return UpstreamBadResponse(name, status, _truncate(message))


async def send(
    client: httpx.AsyncClient, name: str, method: str, url: str, **kw: Any
) -> httpx.Response:
    """Send one request; a transport failure or a non-2xx answer raises a typed error."""
    try:
        response = await client.request(method, url, **kw)
    except httpx.TimeoutException as exc:
        raise UpstreamTimeout(name) from exc
    except httpx.TransportError as exc:
        raise UpstreamUnavailable(name, type(exc).__name__) from exc
    if response.status_code >= 400:
        raise upstream_api_error(name, response)
    return response


async def request_json(
    client: httpx.AsyncClient, name: str, method: str, url: str, **kw: Any
) -> Any:
    """Send one request and return its JSON body, or raise a typed upstream error."""
    response = await send(client, name, method, url, **kw)
    try:
        return response.json()
    except ValueError as exc:
        raise UpstreamBadResponse(name, response.status_code, response.text) from exc


async def sse_events(response: httpx.Response) -> AsyncIterator[dict[str, Any] | str]:
    """Parse an OpenAI-style SSE body: yields each `data:` JSON object, then "[DONE]"."""
    async for line in response.aiter_lines():
        if not line.startswith("data:"):
            continue
        data = line[5:].strip()
        if data == "[DONE]":
            yield "[DONE]"
            return
        try:
            yield json.loads(data)
        except ValueError as exc:
            raise UpstreamBadResponse("upstream stream", 200, data) from exc


# OpenAPI `responses` of a route that answers JSON, or SSE when the request asks to stream.
STREAMED_RESPONSES: dict[int | str, dict[str, Any]] = {
    200: {"description": "JSON; or, when `stream` is true, server-sent events.",
          "content": {"application/json": {}, "text/event-stream": {}}}}
