"""Injected faults: llama.cpp failing before and after a stream has started."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from llmserver.config import Settings
from llmserver.main import create_app
from tests.utils.procs import wait_for
from tests.utils.web import LOOPBACK_URL

HI = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 5, "stream": True}


@pytest.fixture()
def app_client(models_dir) -> Iterator[TestClient]:
    app = create_app(Settings(models_dir=models_dir, parallel=2))
    with TestClient(app, base_url=LOOPBACK_URL) as client:
        for _ in range(300):
            if app.state.inference.pool.state != "loading":
                break
            time.sleep(0.1)
        yield client


def _engine(client: TestClient) -> Any:
    pool = client.app.state.inference.pool  # type: ignore[attr-defined]
    return next(iter(pool.loaded.values())).engine


def _break_after(engine: Any, good_steps: int, monkeypatch) -> None:
    real = engine.decode
    calls = {"n": 0}

    def decode() -> None:
        calls["n"] += 1
        if calls["n"] > good_steps:
            raise RuntimeError("GPU fell off the bus")
        real()

    monkeypatch.setattr(engine, "decode", decode)


def test_error_mid_stream_is_an_sse_event_without_done(app_client: TestClient,
                                                        monkeypatch) -> None:
    _break_after(_engine(app_client), 2, monkeypatch)
    with app_client.stream("POST", "/v1/chat/completions", json=HI) as response:
        assert response.status_code == 200
        datas = [line[5:].strip() for line in response.iter_lines() if line.startswith("data:")]
    assert "[DONE]" not in datas
    assert any(json.loads(d).get("choices") and json.loads(d)["choices"][0]["delta"].get(
        "content") for d in datas[:-1])  # tokens came before the failure
    last = json.loads(datas[-1])
    assert last["error"]["code"] == "generation_failed"
    assert "GPU" not in last["error"]["message"]  # internals stay in the log
    monkeypatch.undo()
    # The slot is free again (a leaked one stays busy) ...
    wait_for(lambda: idle(app_client), 10, "the failed answer's slot to be freed")
    # ... and its half-written cache was dropped: the same prompt again reuses nothing,
    # though a kept cache would share its whole prefix and be picked for it.
    reused = metrics(app_client)["llm_prompt_tokens_reused_total"]
    assert app_client.post("/v1/chat/completions", json={**HI, "stream": False}).status_code == 200
    assert metrics(app_client)["llm_prompt_tokens_reused_total"] == reused
    wait_for(lambda: idle(app_client), 10, "the slots to be idle after the next answer")


def test_error_before_stream_is_a_plain_http_error(app_client: TestClient, monkeypatch) -> None:
    _break_after(_engine(app_client), 0, monkeypatch)
    response = app_client.post("/v1/chat/completions", json=HI)
    assert response.status_code == 500
    assert response.json()["error"]["code"] == "generation_failed"
    wait_for(lambda: idle(app_client), 10, "the failed answer's slot to be freed")


def metrics(client: TestClient) -> dict[str, float]:
    """llmserver's unlabelled samples in /metrics."""
    return {s.name: s.value for f in text_string_to_metric_families(client.get("/metrics").text)
            for s in f.samples if not s.labels}


def idle(client: TestClient) -> bool:
    """No slot busy and no request in flight (llmserver's own gauges)."""
    now = metrics(client)
    return now["llm_slots_busy"] == 0 and now["llm_generations_in_flight"] == 0


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
