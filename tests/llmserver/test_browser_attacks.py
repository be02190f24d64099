"""A web page in the user's browser must not drive llmserver: no cross-site writes (bodies a
page can post without a preflight), no foreign Host names (DNS rebinding)."""

from __future__ import annotations

import json

import httpx
import pytest

BODY = json.dumps({"messages": [{"role": "user", "content": "hi"}], "max_tokens": 2})
# What a <form> or fetch(..., {mode: "no-cors"}) can send from any site.
SIMPLE = ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]


def generated(server) -> float:
    """Generations llmserver has run so far (its metrics)."""
    text = httpx.get(server.url + "/metrics", timeout=10).text
    for line in text.splitlines():
        if line.startswith("llm_generations_total"):
            return float(line.split()[-1])
    return 0.0


@pytest.mark.parametrize("kind", SIMPLE)
@pytest.mark.parametrize("path", ["/v1/chat/completions", "/tokenize"])
def test_a_page_cannot_post_a_simple_request(llm_server, kind: str, path: str) -> None:
    body = BODY if path.startswith("/v1") else '{"content": "hi"}'
    before = generated(llm_server)
    response = httpx.post(llm_server.url + path, content=body, timeout=30,
                          headers={"content-type": kind})
    assert response.status_code == 415, response.text
    assert response.json()["error"]["code"] == "unsupported_media_type"
    assert generated(llm_server) == before


def test_a_cross_site_write_is_refused(llm_server) -> None:
    for headers in ({"origin": "https://evil.example"}, {"sec-fetch-site": "cross-site"}):
        response = httpx.post(llm_server.url + "/v1/chat/completions", content=BODY,
                              timeout=30, headers={"content-type": "application/json",
                                                   **headers})
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "cross_site_request"


@pytest.mark.parametrize("path", ["/v1/models", "/health", "/v1/chat/completions"])
def test_a_rebound_host_name_is_refused(llm_server, path: str) -> None:
    """DNS rebinding: evil.example now resolves to 127.0.0.1; the Host header still says so."""
    response = httpx.request("POST" if "chat" in path else "GET", llm_server.url + path,
                             headers={"host": "evil.example:8000",
                                      "content-type": "application/json"},
                             content=BODY if "chat" in path else None, timeout=30)
    assert response.status_code == 400, response.text
    error = response.json()["error"]
    assert error["code"] == "host_not_allowed"
    assert "LLMSERVER_ALLOWED_HOSTS" in error["message"]


def test_curl_d_with_a_key_still_works(llm_server) -> None:
    """`curl -d` sends form-encoded; with an Authorization header (no page can add one
    without a preflight) the body is read as JSON."""
    response = httpx.post(llm_server.url + "/v1/chat/completions", content=BODY, timeout=60,
                          headers={"content-type": "application/x-www-form-urlencoded",
                                   "authorization": "Bearer anything"})
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["role"] == "assistant"
    same_origin = httpx.post(llm_server.url + "/v1/chat/completions", content=BODY, timeout=60,
                             headers={"content-type": "application/json",
                                      "origin": llm_server.url,
                                      "sec-fetch-site": "same-origin"})
    assert same_origin.status_code == 200, same_origin.text
