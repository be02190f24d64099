"""Health answers: 200 when every dependency is ok, 503 otherwise, JSON naming each one."""

from __future__ import annotations

from fastapi.responses import JSONResponse

OK = "ok"


def health_response(service: str, dependencies: dict[str, str]) -> JSONResponse:
    """Build the /health answer from `{dependency: state}`; any state but "ok" means 503."""
    ready = all(state == OK for state in dependencies.values())
    body = {"status": "ok" if ready else "unavailable", "service": service,
            "dependencies": dependencies}
    headers = {} if ready else {"Retry-After": "2"}
    return JSONResponse(body, status_code=200 if ready else 503, headers=headers)
