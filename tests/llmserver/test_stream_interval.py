"""LLMSERVER_STREAM_INTERVAL_MS: a stream's tokens arrive in groups, the first at once, and
nothing is lost or reordered (the same text, logprobs and usage as a non-streamed answer)."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.utils.procs import ServiceProcess
from tests.utils.web import LOOPBACK_URL

INTERVAL_MS = 250
TOKENS = 40


@pytest.fixture(scope="module")
def server(models_dir) -> Iterator[ServiceProcess]:
    env = {"LLMSERVER_MODELS_DIR": str(models_dir), "LLMSERVER_PARALLEL": "2",
           "LLMSERVER_N_CTX": "1024", "LLMSERVER_STREAM_INTERVAL_MS": str(INTERVAL_MS),
           # Off: a streamed and a whole answer asked at different moments must be equal.
           "LLMSERVER_FLASH_ATTN": "off"}
    with ServiceProcess("llmserver", "LLMSERVER_", env=env) as proc:
        yield proc


def test_tokens_come_in_groups_and_add_up_to_the_whole_answer(server) -> None:
    body = {"messages": [{"role": "user", "content": "Tell me about the sea."}],
            "max_tokens": TOKENS, "temperature": 0, "logprobs": True,
            "logit_bias": {"0": -100, "2": -100}}  # no end of text: it runs to max_tokens
    whole = httpx.post(server.url + "/v1/chat/completions", json=body, timeout=120).json()
    reads: list[tuple[float, list[dict]]] = []  # each network read: when, and its chunks
    buffer = b""
    start = time.perf_counter()
    with httpx.stream("POST", server.url + "/v1/chat/completions", timeout=120,
                      json={**body, "stream": True,
                            "stream_options": {"include_usage": True}}) as response:
        assert response.status_code == 200
        for data in response.iter_raw():
            buffer += data
            *complete, buffer = buffer.split(b"\n\n")
            chunks = [json.loads(e[5:]) for e in complete
                      if e.startswith(b"data:") and e != b"data: [DONE]"]
            reads.append((time.perf_counter() - start, chunks))
    chunks = [c for _, c in reads for c in c]
    text = "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])
    logprobs = [lp for c in chunks if c["choices"]
                for lp in (c["choices"][0].get("logprobs") or {}).get("content") or []]
    answer = whole["choices"][0]
    assert text == answer["message"]["content"]
    assert [lp["token"] for lp in logprobs] == [lp["token"] for lp in answer["logprobs"]["content"]]
    assert chunks[-1]["usage"]["completion_tokens"] == TOKENS

    with_text = [(t, c) for t, c in reads
                 if any(ch["choices"] and ch["choices"][0]["delta"].get("content") for ch in c)]
    first_at, first = with_text[0]
    assert sum(1 for c in first if c["choices"][0]["delta"].get("content")) == 1  # at once
    # The rest in a few groups, INTERVAL_MS apart (not one write per token).
    assert len(with_text) <= TOKENS // 4, [len(c) for _, c in with_text]
    gaps = [b[0] - a[0] for a, b in zip(with_text, with_text[1:], strict=False)]
    assert all(g >= INTERVAL_MS / 1000 * 0.8 for g in gaps[:-1]), gaps


def test_a_whole_answer_is_handed_over_once_at_its_end(models_dir, monkeypatch) -> None:
    """Not streamed: the engine keeps the text and hands it over with the end, joined (one
    wake-up of the request's event loop and one event, not one per step); streamed with the
    interval off: step by step."""
    from fastapi.testclient import TestClient

    from llmserver.config import Settings
    from llmserver.engine.task import Task
    from llmserver.main import create_app

    app = create_app(Settings(models_dir=models_dir, parallel=2, stream_interval_ms=0))
    handed: list[tuple[bool, int, str]] = []  # (whole, engine step, event kind)
    real_emit = Task.emit
    with TestClient(app, base_url=LOOPBACK_URL) as client:
        for _ in range(300):
            if app.state.inference.pool.state != "loading":
                break
            time.sleep(0.1)
        engine = next(iter(app.state.inference.pool.loaded.values())).engine

        def emit(task: Task, event) -> None:
            handed.append((task.whole, engine.steps, event.kind))
            real_emit(task, event)

        monkeypatch.setattr(Task, "emit", emit)
        body = {"prompt": "The sea", "max_tokens": 12, "temperature": 0,
                "logit_bias": {"0": -100, "2": -100}}
        whole = client.post("/v1/completions", json=body).json()
        with client.stream("POST", "/v1/completions", json={**body, "stream": True}) as r:
            streamed = "".join(json.loads(line[5:])["choices"][0]["text"] for line in
                               r.iter_lines() if line.startswith("data:") and "[DONE]" not in line)
    assert whole["choices"][0]["text"] == streamed
    steps = {w: [s for ww, s, kind in handed if ww == w and kind == "token"] for w in (True, False)}
    done_step = next(s for w, s, kind in handed if w and kind == "done")
    assert len(steps[True]) == 1 and steps[True] == [done_step]  # its text, joined, at the end
    assert len(set(steps[False])) >= 11
