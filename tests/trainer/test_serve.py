"""A trained model is served by a real llmserver: listed, completes, chats."""

from __future__ import annotations

import shutil

import httpx

from trainer.train import Result


def test_llmserver_serves_the_trained_model(trained: Result, llm_server, models_dir) -> None:
    target = models_dir / trained.model_path.name
    shutil.copy(trained.model_path, target)
    try:
        models = httpx.get(llm_server.url + "/v1/models", timeout=10).json()["data"]
        tiny = next(m for m in models if m["id"] == "tiny-test")
        assert tiny["context_length"] == 32  # served at its trained context, not 2048
        too_long = httpx.post(llm_server.url + "/v1/completions", timeout=60, json={
            "model": "tiny-test", "prompt": "This License", "max_tokens": 40})
        assert too_long.status_code == 400
        assert too_long.json()["error"]["code"] == "context_length_exceeded"
        reply = httpx.post(llm_server.url + "/v1/completions", timeout=60, json={
            "model": "tiny-test", "prompt": "This License", "max_tokens": 12,
            "temperature": 0})
        assert reply.status_code == 200, reply.text
        body = reply.json()
        assert body["model"] == "tiny-test" and body["choices"][0]["text"]
        assert body["usage"]["completion_tokens"] > 0
        chat = httpx.post(llm_server.url + "/v1/chat/completions", timeout=60, json={
            "model": "tiny-test", "messages": [{"role": "user", "content": "Hello"}],
            "max_tokens": 8})
        assert chat.status_code == 200, chat.text
    finally:
        target.unlink()
