"""Injected faults: llama.cpp failing before and after a stream has started."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from llmserver.config import Settings
from llmserver.main import create_app

HI = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stream": True}


@pytest.fixture()
def app_client(models_dir) -> Iterator[TestClient]:
    app = create_app(Settings(models_dir=models_dir))
    with TestClient(app) as client:
        for _ in range(300):
            if app.state.inference.pool.state != "loading":
                break
            time.sleep(0.1)
        yield client


def _model(client: TestClient) -> Any:
    return next(iter(client.app.state.inference.pool.loaded.values()))  # type: ignore[attr-defined]


def test_error_mid_stream_is_an_sse_event_without_done(app_client: TestClient,
                                                        monkeypatch) -> None:
    model = _model(app_client)
    real = model.llama.create_chat_completion

    def broken(**kwargs: Any) -> Iterator[dict]:
        stream = real(**kwargs)
        yield next(stream)
        yield next(stream)
        raise RuntimeError("GPU fell off the bus")

    monkeypatch.setattr(model.llama, "create_chat_completion", broken)
    with app_client.stream("POST", "/v1/chat/completions", json=HI) as response:
        assert response.status_code == 200
        datas = [line[5:].strip() for line in response.iter_lines() if line.startswith("data:")]
    assert "[DONE]" not in datas
    last = json.loads(datas[-1])
    assert last["error"]["code"] == "generation_failed"
    assert "GPU" not in last["error"]["message"]  # internals stay in the log
    # the model is free again
    monkeypatch.undo()
    assert app_client.post("/v1/chat/completions", json={**HI, "stream": False}).status_code == 200


def test_error_before_stream_is_a_plain_http_error(app_client: TestClient, monkeypatch) -> None:
    model = _model(app_client)

    def broken(**kwargs: Any) -> Iterator[dict]:
        raise RuntimeError("boom")
        yield {}  # pragma: no cover

    monkeypatch.setattr(model.llama, "create_chat_completion", broken)
    response = app_client.post("/v1/chat/completions", json=HI)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "generation_failed"


def test_broken_gguf_is_a_clear_error(app_client: TestClient, models_dir) -> None:
    (models_dir / "broken.gguf").write_bytes(b"GGUF" + b"\0" * 64)
    try:
        response = app_client.post("/v1/chat/completions",
                                   json={**HI, "model": "broken", "stream": False})
        assert response.status_code == 500
        assert response.json()["error"]["code"] == "model_load_failed"
        ok = app_client.post("/v1/chat/completions", json={**HI, "stream": False})
        assert ok.status_code == 200  # the default model loads again
    finally:
        (models_dir / "broken.gguf").unlink()
