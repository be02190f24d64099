"""Schemas and tools become grammars only within bounds: a small request must never build
gigabytes of grammar text or a grammar that overflows llama.cpp's recursive parser."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from llmserver import grammar_limits, structured
from llmserver.schemas import ChatCompletionRequest
from services.errors import APIError
from tests.utils.procs import ServiceProcess, running

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]


def fmt(schema: dict[str, Any]) -> dict[str, Any]:
    return {"response_format": {"type": "json_schema",
                                "json_schema": {"name": "x", "schema": schema}}}


def forced(parameters: dict[str, Any], choice: Any = "required") -> dict[str, Any]:
    tool = {"type": "function", "function": {"name": "f", "parameters": parameters}}
    return {"tools": [tool], "tool_choice": choice}


def nested(depth: int) -> dict[str, Any]:
    schema: dict[str, Any] = {"type": "integer"}
    for _ in range(depth):
        schema = {"type": "array", "items": schema}
    return schema


def string(**kw: int) -> dict[str, Any]:
    return {"type": "string", **kw}


LIMIT = grammar_limits.MAX_REPEAT
WIDE = {"type": "object", "required": [f"p{i}" for i in range(1000)],
        "properties": {f"p{i}": string(maxLength=LIMIT) for i in range(1000)}}
# (id, request fields, error code, param)
BOMBS = [
    ("maxLength 1e6", fmt(string(maxLength=1_000_000)), "repetition_too_large",
     "response_format"),
    ("maxLength 3e8", fmt(string(maxLength=300_000_000)), "repetition_too_large",
     "response_format"),
    ("maxLength as a float", fmt({"type": "string", "maxLength": 1e6}),
     "repetition_too_large", "response_format"),
    ("minLength 1e6", fmt(string(minLength=1_000_000)), "repetition_too_large",
     "response_format"),
    ("maxLength one past the limit", fmt(string(maxLength=LIMIT + 1)), "repetition_too_large",
     "response_format"),
    ("maxItems 1e6", fmt({"type": "array", "items": {"type": "integer"},
                          "maxItems": 1_000_000}), "repetition_too_large", "response_format"),
    ("minItems 1e6", fmt({"type": "array", "items": {"type": "integer"},
                          "minItems": 1_000_000}), "repetition_too_large", "response_format"),
    ("pattern quantifier 1e6", fmt({"type": "string", "pattern": "^a{0,1000000}$"}),
     "repetition_too_large", "response_format"),
    ("pattern groups 30000 deep", fmt({"type": "string",
                                       "pattern": "^" + "(" * 30000 + "a" + ")" * 30000 + "$"}),
     "schema_too_deep", "response_format"),
    ("schema 300 deep", fmt(nested(300)), "schema_too_deep", "response_format"),
    ("1000 strings of the longest length", fmt(WIDE), "grammar_too_large", "response_format"),
    ("tool maxLength 1e6, required",
     forced({"type": "object", "properties": {"s": string(maxLength=1_000_000)}}),
     "repetition_too_large", "tools"),
    ("tool maxLength 3e8, named",
     forced({"type": "object", "properties": {"s": string(maxLength=300_000_000)}},
            {"type": "function", "function": {"name": "f"}}),
     "repetition_too_large", "tools"),
    ("tool schema 300 deep, required", forced(nested(300)), "schema_too_deep", "tools"),
]


@pytest.fixture(scope="module")
def server(models_dir) -> Iterator[ServiceProcess]:
    env = {"LLMSERVER_MODELS_DIR": str(models_dir), "LLMSERVER_PARALLEL": "2",
           "LLMSERVER_QUEUE_SIZE": "4", "LLMSERVER_N_CTX": "2048"}
    with ServiceProcess("llmserver", "LLMSERVER_", env=env) as proc:
        yield proc


def post(server: ServiceProcess, fields: dict[str, Any], timeout: float = 120) -> httpx.Response:
    body = {"messages": HI, "max_tokens": 4, "temperature": 0, **fields}
    return httpx.post(server.url + CHAT, json=body, timeout=timeout)


def assert_still_serving(server: ServiceProcess, pid: int | None) -> None:
    assert pid is not None and server.pid == pid and running(pid), server.log()
    assert post(server, {}).status_code == 200


@pytest.mark.parametrize("fields,code,param", [b[1:] for b in BOMBS], ids=[b[0] for b in BOMBS])
def test_bomb_is_a_400_and_the_server_lives(server: ServiceProcess, fields: dict[str, Any],
                                            code: str, param: str) -> None:
    pid = server.pid
    started = time.monotonic()
    try:
        response = post(server, fields, timeout=10)
    except httpx.HTTPError as exc:  # the process died or spun on the request
        pytest.fail(f"no answer: {exc!r}; {server.log()[-1000:]}")
    assert time.monotonic() - started < 3  # refused up front, before any grammar is built
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert (error["code"], error["param"]) == (code, param)
    assert error["type"] == "invalid_request_error"
    assert_still_serving(server, pid)


def test_schema_within_the_limits_constrains_the_answer(server: ServiceProcess) -> None:
    response = post(server, {"messages": [{"role": "user", "content":
                                           "Write a long story about a dragon."}],
                             "max_tokens": 80, **fmt(string(maxLength=50))})
    assert response.status_code == 200, response.text
    choice = response.json()["choices"][0]
    assert choice["finish_reason"] == "stop"  # the grammar closed the string
    answer = json.loads(choice["message"]["content"])
    assert isinstance(answer, str) and len(answer) <= 50


def test_longest_allowed_repetition_parses(server: ServiceProcess) -> None:
    """The limit is one llama.cpp's parser accepts: at it, an answer; one past, a 400."""
    for fields in (fmt(string(maxLength=LIMIT)),
                   fmt({"type": "array", "items": {"type": "integer"}, "maxItems": LIMIT}),
                   fmt({"type": "string", "pattern": f"^a{{0,{LIMIT}}}$"}),
                   forced({"type": "object", "properties": {"s": string(maxLength=LIMIT)},
                           "required": ["s"]})):
        response = post(server, fields)
        assert response.status_code == 200, (fields, response.text)


def plan_error(fields: dict[str, Any]) -> APIError:
    req = ChatCompletionRequest.model_validate({"messages": HI, **fields})
    with pytest.raises(APIError) as caught:
        structured.plan(req)
    return caught.value


@pytest.mark.parametrize("key", ["minLength", "maxLength", "minItems", "maxItems",
                                 "minProperties", "maxProperties"])
@pytest.mark.parametrize("value", [LIMIT + 1, 10**6, 3 * 10**8, 10**40, 1e300])
def test_every_repetition_count_is_bounded(key: str, value: float) -> None:
    kind = "string" if "Length" in key else "array" if "Items" in key else "object"
    schema = {"type": kind, key: value, **({"items": {"type": "integer"}}
                                            if kind == "array" else {})}
    started = time.monotonic()
    error = plan_error(fmt({"type": "object", "properties": {"a": schema}}))
    assert time.monotonic() - started < 0.5
    assert (error.status, error.code, error.param) == (400, "repetition_too_large",
                                                       "response_format")


def test_refs_count_towards_size_and_depth() -> None:
    # each $ref is expanded once, but a chain of them nests like the schema it stands for
    defs = {f"d{i}": {"type": "array", "items": {"$ref": f"#/$defs/d{i + 1}"}}
            for i in range(200)}
    defs["d200"] = {"type": "integer"}
    error = plan_error(fmt({"$defs": defs, "$ref": "#/$defs/d0"}))
    assert (error.code, error.param) == ("schema_too_deep", "response_format")


def props(names: list[str], required: bool) -> dict[str, Any]:
    return {"type": "object", "properties": {n: {"type": "integer"} for n in names},
            **({"required": names} if required else {})}


BIG = {"properties": {f"p{i}": string(maxLength=LIMIT) for i in range(100)}}
# Small schemas on which the converter does quadratic work or repeats a $ref at every use.
AMPLIFIERS = [
    ("900 optional properties", props([f"p{i}" for i in range(900)], False)),
    ("3000 names that escape alike", props([f"a{chr(0x100 + i)}" for i in range(3000)], True)),
    ("allOf of one $ref 10000 times", {"$defs": {"big": BIG},
                                       "allOf": [{"$ref": "#/$defs/big"}] * 10000}),
    ("anyOf in allOf of one $ref 10000 times",
     {"$defs": {"big": BIG}, "allOf": [{"anyOf": [{"$ref": "#/$defs/big"}] * 10000}]}),
]
MODEST = [
    ("150 optional properties", props([f"p{i}" for i in range(150)], False)),
    ("300 names that escape alike", props([f"名{chr(0x4e00 + i)}" for i in range(300)], True)),
    ("allOf of one $ref 3 times",
     {"$defs": {"b": {"properties": {"a": string(maxLength=LIMIT)}}},
      "allOf": [{"$ref": "#/$defs/b"}] * 3}),
]


@pytest.mark.parametrize("schema", [a[1] for a in AMPLIFIERS], ids=[a[0] for a in AMPLIFIERS])
def test_amplifying_schemas_are_refused_at_once(schema: dict[str, Any]) -> None:
    started = time.process_time()  # CPU time: a busy shared machine does not count
    error = plan_error(fmt(schema))
    assert time.process_time() - started < 2  # an exponential blow-up takes minutes
    assert (error.status, error.code, error.param) == (400, "grammar_too_large",
                                                       "response_format")


@pytest.mark.parametrize("schema", [m[1] for m in MODEST], ids=[m[0] for m in MODEST])
def test_modest_schemas_are_converted(schema: dict[str, Any]) -> None:
    started = time.process_time()  # CPU time: a busy shared machine does not count
    req = ChatCompletionRequest.model_validate({"messages": HI, **fmt(schema)})
    assert structured.plan(req).grammar
    assert time.process_time() - started < 2  # an exponential blow-up takes minutes


def test_grammar_backstop_refuses_deep_or_large_text() -> None:
    deep = "root ::= " + "(" * 20000 + '"a"' + ")" * 20000
    with pytest.raises(APIError) as caught:
        grammar_limits.check_grammar(deep, "tools")
    assert (caught.value.status, caught.value.code, caught.value.param) == (
        400, "grammar_too_deep", "tools")
    # parentheses inside literals and character classes do not nest
    grammar_limits.check_grammar('root ::= "' + "(" * 5000 + '" [(] ("x")', "tools")
    big = "root ::= " + '"a" ' * grammar_limits.MAX_GRAMMAR_CHARS
    with pytest.raises(APIError) as caught:
        grammar_limits.check_grammar(big, "tools")
    assert caught.value.code == "grammar_too_large"


def test_ordinary_schemas_and_tools_still_plan() -> None:
    person: dict[str, Any] = {
        "type": "object", "required": ["name", "age", "tags"],
        "properties": {"name": string(minLength=1, maxLength=200), "age": {"type": "integer"},
                       "tags": {"type": "array", "items": string(maxLength=30),
                                "minItems": 1, "maxItems": 20},
                       "code": {"type": "string", "pattern": "^[A-Z]{3}-[0-9]{2,4}$"}}}
    for schema in (person, {**person, "$defs": {"text": string(maxLength=LIMIT)},
                            "properties": {**person["properties"], "bio": {"$ref": "#/$defs/text"},
                                           "名前": string(), "年齢": {"type": "integer"}}}):
        req = ChatCompletionRequest.model_validate({"messages": HI, **fmt(schema)})
        grammar = structured.plan(req).grammar
        assert grammar is not None and "root ::=" in grammar
    tools = [{"type": "function", "function": {"name": f"t{i}", "parameters": person}}
             for i in range(128)]
    req = ChatCompletionRequest.model_validate({"messages": HI, "tools": tools,
                                                "tool_choice": "required"})
    assert structured.plan(req).forced
