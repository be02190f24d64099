"""What every fuzz test shares: the bounds on generated requests, the checks, the tally.

Examples per operation: 25 in the default suite, deterministic (derandomized, so CI sees the
same requests each run); `scripts/test.sh --fuzz` runs 200, random.
"""

from __future__ import annotations

import os
from collections import Counter
from typing import Any

import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
)

EXAMPLES = int(os.environ.get("TINYLLM_FUZZ_EXAMPLES", "25"))
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, database=None,
                    derandomize="TINYLLM_FUZZ_EXAMPLES" not in os.environ,
                    suppress_health_check=list(HealthCheck))
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
# Generation is the one slow thing a valid request can ask for: keep answers short.
TOKEN_FIELDS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
MAX_TOKENS = 8
MAX_N = 2

tally: dict[str, Counter] = {}


def bound(case: schemathesis.Case) -> None:
    """Cap the generation a case asks for; invalid values (negative, wrong type) stay."""
    body = case.body
    if not isinstance(body, dict):
        return
    for name in TOKEN_FIELDS:
        value = body.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > MAX_TOKENS:
            body[name] = MAX_TOKENS
    if not any(body.get(name) is not None for name in TOKEN_FIELDS):
        if "messages" in body or "prompt" in body:
            body["max_tokens"] = MAX_TOKENS
        elif "input" in body and case.path.endswith("/responses"):
            body["max_output_tokens"] = MAX_TOKENS
    n = body.get("n")
    if isinstance(n, int) and not isinstance(n, bool) and n > MAX_N:
        body["n"] = MAX_N


def operations(app: Any) -> list[str]:
    """`METHOD /path` of every operation in an app's OpenAPI schema."""
    paths = app.openapi()["paths"]
    return [f"{method.upper()} {path}" for path, item in paths.items() for method in item]


def fuzz(service: str, url: str, label: str) -> None:
    """Run valid and invalid generated requests of one operation against the service at url."""
    method, path = label.split(" ", 1)
    schema = _schemas.get(url) or _schemas.setdefault(
        url, schemathesis.openapi.from_url(url + "/openapi.json"))
    operation = schema[path][method]
    cases = st.one_of(operation.as_strategy(GenerationMode.POSITIVE),
                      operation.as_strategy(GenerationMode.NEGATIVE))

    @SETTINGS
    @given(case=cases)
    def examples(case: schemathesis.Case) -> None:
        run(service, case, base_url=url)

    examples()


_schemas: dict[str, Any] = {}


def run(service: str, case: schemathesis.Case, **kwargs: Any) -> None:
    """Send the case (bounded) to the running service and check the answer."""
    bound(case)
    response = case.call(timeout=60, **kwargs)
    counts = tally.setdefault(service, Counter())
    counts["requests"] += 1
    counts[f"{response.status_code // 100}xx"] += 1
    case.validate_response(response, checks=CHECKS)


def summary() -> list[str]:
    """One line per fuzzed service: requests sent and answers by status class."""
    return [f"{service}: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
            for service, counts in sorted(tally.items())]
