"""The chatbot's `/v1/completions` in front of the real llmserver: the very text and usage
llmserver gives directly, as JSON, as curl -d's form body with a key, and streamed."""

from __future__ import annotations

import json

import httpx
import pytest

from llmserver.models import DEFAULT_MODEL
from tests.utils.procs import ServiceProcess

pytestmark = pytest.mark.slow
BODY = {"model": DEFAULT_MODEL, "prompt": "The capital of France is", "max_tokens": 8,
        "temperature": 0}


@pytest.fixture(scope="module")
def direct(llm_server: ServiceProcess) -> dict:
    """llmserver's own answer to BODY."""
    reply = httpx.post(llm_server.url + "/v1/completions", json=BODY, timeout=120)
    assert reply.status_code == 200, reply.text
    return reply.json()


@pytest.mark.parametrize("form", [False, True], ids=["json", "curl-form"])
def test_completion_through_the_chatbot_is_llmservers(chatbot: ServiceProcess, direct: dict,
                                                      form: bool) -> None:
    # curl -d sends its form type; a request with a key may (the chatbot reads it as JSON).
    kwargs = {"content": json.dumps(BODY), "headers": {
        "content-type": "application/x-www-form-urlencoded",
        "authorization": "Bearer any"}} if form else {"json": BODY}
    reply = httpx.post(chatbot.url + "/v1/completions", timeout=120, **kwargs)
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["object"] == "text_completion" and answer["model"] == DEFAULT_MODEL
    text = answer["choices"][0]["text"]
    assert text.strip() and text == direct["choices"][0]["text"]
    assert answer["choices"][0]["finish_reason"] == "length"
    assert answer["usage"] == direct["usage"]
    assert answer["usage"]["completion_tokens"] == BODY["max_tokens"]
    assert answer["usage"]["total_tokens"] == answer["usage"]["prompt_tokens"] + 8


def test_streamed_completion_through_the_chatbot_is_llmservers(chatbot: ServiceProcess,
                                                              direct: dict) -> None:
    body = {**BODY, "stream": True, "stream_options": {"include_usage": True}}
    with httpx.stream("POST", chatbot.url + "/v1/completions", json=body,
                      timeout=120) as response:
        assert response.status_code == 200, response.read()
        datas = [line[5:].strip() for line in response.iter_lines() if line.startswith("data:")]
    assert datas[-1] == "[DONE]"
    chunks = [json.loads(d) for d in datas[:-1]]
    assert all(c["object"] == "text_completion" for c in chunks)
    assert "".join(c["choices"][0]["text"] for c in chunks if c["choices"]) == \
        direct["choices"][0]["text"]
    assert chunks[-1]["usage"] == direct["usage"]
