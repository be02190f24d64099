"""Every bad input answers the OpenAI error envelope with the right status and code."""

from __future__ import annotations

import time

import httpx
import pytest
from fastapi.testclient import TestClient

from llmserver.config import Settings
from llmserver.main import create_app
from tests.utils.web import LOOPBACK_URL

HI = [{"role": "user", "content": "hi"}]
CHAT = "/v1/chat/completions"

BAD = [
    ("malformed json", CHAT, b'{"messages": [', 400, "invalid_json"),
    ("body not an object", CHAT, b'[1, 2]', 400, "invalid_value"),
    ("messages missing", CHAT, {"model": "x"}, 400, "invalid_value"),
    ("messages a string", CHAT, {"messages": "hi"}, 400, "invalid_value"),
    ("messages empty", CHAT, {"messages": []}, 400, "invalid_value"),
    ("message without role", CHAT, {"messages": [{"content": "hi"}]}, 400, "invalid_value"),
    ("unknown role", CHAT, {"messages": [{"role": "wizard", "content": "x"}]}, 400,
     "invalid_value"),
    ("content a number", CHAT, {"messages": [{"role": "user", "content": 5}]}, 400,
     "invalid_value"),
    ("max_tokens zero", CHAT, {"messages": HI, "max_tokens": 0}, 400, "invalid_value"),
    ("max_tokens negative", CHAT, {"messages": HI, "max_tokens": -1}, 400, "invalid_value"),
    ("max_tokens a string", CHAT, {"messages": HI, "max_tokens": "lots"}, 400, "invalid_value"),
    ("max_tokens beyond context", CHAT, {"messages": HI, "max_tokens": 10**6}, 400,
     "context_length_exceeded"),
    ("temperature negative", CHAT, {"messages": HI, "temperature": -1}, 400, "invalid_value"),
    ("temperature NaN", CHAT, b'{"messages": [{"role":"user","content":"hi"}], '
     b'"temperature": NaN}', 400, "invalid_value"),
    ("top_p zero", CHAT, {"messages": HI, "top_p": 0}, 400, "invalid_value"),
    ("n zero", CHAT, {"messages": HI, "n": 0}, 400, "invalid_value"),
    ("n beyond the slots", CHAT, {"messages": HI, "n": 3, "max_tokens": 2}, 400,
     "invalid_value"),
    ("logit_bias not a token id", CHAT, {"messages": HI, "logit_bias": {"a": 1}}, 400,
     "invalid_value"),
    ("logit_bias outside the vocabulary", CHAT,
     {"messages": HI, "logit_bias": {"99999999": 1}}, 400, "invalid_value"),
    ("top_logprobs too many", CHAT, {"messages": HI, "logprobs": True, "top_logprobs": 21},
     400, "invalid_value"),
    ("tool_choice without tools", CHAT, {"messages": HI, "tool_choice": "required"}, 400,
     "invalid_value"),
    ("tool_choice names an unknown tool", CHAT,
     {"messages": HI, "tools": [{"type": "function", "function": {"name": "a"}}],
      "tool_choice": {"type": "function", "function": {"name": "b"}}}, 400, "invalid_value"),
    ("json_schema without schema", CHAT,
     {"messages": HI, "response_format": {"type": "json_schema"}}, 400, "invalid_value"),
    ("response_format unknown type", CHAT,
     {"messages": HI, "response_format": {"type": "xml"}}, 400, "invalid_value"),
    ("completion logprobs above 5", "/v1/completions", {"prompt": "a", "logprobs": 6}, 400,
     "invalid_value"),
    ("too many stops", CHAT, {"messages": HI, "stop": ["a", "b", "c", "d", "e"]}, 400,
     "invalid_value"),
    ("unknown model", CHAT, {"model": "no-such-model", "messages": HI}, 404, "model_not_found"),
    ("prompt over context", CHAT, {"messages": [{"role": "user", "content": "word " * 3000}]},
     400, "context_length_exceeded"),
    ("completion without prompt", "/v1/completions", {"max_tokens": 3}, 400, "invalid_value"),
    ("two prompts", "/v1/completions", {"prompt": ["a", "b"]}, 400, "invalid_value"),
    ("tokenize neither", "/tokenize", {}, 400, "invalid_value"),
    ("unknown route", "/v1/nothing", {}, 404, "not_found"),
]


@pytest.mark.parametrize("name,path,body,status,code", BAD, ids=[b[0] for b in BAD])
def test_bad_input(llm_server, name: str, path: str, body: object, status: int,
                   code: str) -> None:
    kwargs = {"content": body} if isinstance(body, bytes) else {"json": body}
    response = httpx.post(llm_server.url + path, timeout=30,
                          headers={"content-type": "application/json"}, **kwargs)
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    error = response.json()["error"]
    assert error["code"] == code
    assert set(error) == {"message", "type", "param", "code"}
    assert error["message"]


def test_oversized_body_is_413(llm_server) -> None:
    big = {"messages": [{"role": "user", "content": "x" * 2_000_000}]}
    response = httpx.post(llm_server.url + CHAT, json=big, timeout=30)
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "payload_too_large"


def test_server_still_answers_after_bad_input(llm_server) -> None:
    response = httpx.post(llm_server.url + CHAT, json={"messages": HI, "max_tokens": 2},
                          timeout=60)
    assert response.status_code == 200


@pytest.fixture(scope="module")
def keyed(models_dir):
    settings = Settings(api_key="s3cret", models_dir=models_dir)
    with TestClient(create_app(settings), base_url=LOOPBACK_URL) as client:
        assert wait_ready(client) == "ok"  # the key is checked in front of a loaded model
        yield client


def wait_ready(client: TestClient, timeout: float = 60) -> str:
    """The default model's state once it has stopped loading ("ok" or "error"); fails the
    test when it is still loading after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while (state := client.get("/health").json()["dependencies"]["model"]) == "loading":
        if time.monotonic() > deadline:
            raise TimeoutError(f"the default model still loading after {timeout:.0f} s")
        time.sleep(0.1)
    return state


@pytest.mark.parametrize("header,code", [(None, "missing_api_key"),
                                         ("Bearer wrong", "invalid_api_key"),
                                         ("Basic s3cret", "missing_api_key")])
def test_api_key_required(keyed: TestClient, header: str | None, code: str) -> None:
    headers = {"authorization": header} if header else {}
    response = keyed.get("/v1/models", headers=headers)
    assert response.status_code == 401
    assert response.json()["error"] == {"message": response.json()["error"]["message"],
                                        "type": "authentication_error", "param": None,
                                        "code": code}


def test_api_key_accepted_and_health_public(keyed: TestClient) -> None:
    assert keyed.get("/v1/models", headers={"authorization": "Bearer s3cret"}).status_code == 200
    assert keyed.get("/health").status_code == 200
    assert keyed.get("/metrics").status_code == 401


def test_health_503_while_loading(models_dir) -> None:
    # lifespan not run
    client = TestClient(create_app(Settings(models_dir=models_dir)), base_url=LOOPBACK_URL)
    response = client.get("/health")
    assert response.status_code == 503
    assert response.json()["dependencies"] == {"model": "loading"}
    assert response.headers["retry-after"]
    chat = client.post(CHAT, json={"messages": HI})
    assert chat.status_code == 503 and chat.json()["error"]["code"] == "model_loading"


def test_health_503_when_default_model_missing(models_dir) -> None:
    settings = Settings(models_dir=models_dir, default_model="absent")
    with TestClient(create_app(settings), base_url=LOOPBACK_URL) as client:
        assert wait_ready(client) == "error"
        response = client.get("/health")
        assert response.status_code == 503
        assert response.json()["dependencies"] == {"model": "error"}
