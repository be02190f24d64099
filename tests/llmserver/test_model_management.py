"""Models as Ollama users manage them, on a real llmserver started the seed's way
(`python -m llmserver --model FILE --host ... --n_gpu_layers 0`): per-model settings from
models.json, keep_alive giving memory back, a model too big for the memory budget refused
while the others keep answering, and removal."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from llmserver.models import DEFAULT_MODEL, packaged_models
from tests.utils.procs import ServiceProcess, wait_for

PIRATE = "You are a pirate. Answer in one short sentence."


def rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    folder = tmp_path_factory.mktemp("models")
    smol = packaged_models()[DEFAULT_MODEL]
    for name in ("smol.gguf", "smol-wide.gguf"):
        (folder / name).symlink_to(smol)
    (folder / "models.json").write_text(json.dumps({
        "smol": {"n_ctx": 256, "parallel": 1, "system_prompt": PIRATE},
        "smol-wide": {"n_ctx": 2048, "parallel": 8}}))
    cmd = [__import__("sys").executable, "-m", "llmserver", "--model", str(folder / "smol.gguf"),
           "--host", "127.0.0.1", "--n_gpu_layers", "0", "--use_mlock", "True"]
    env = {"LLMSERVER_KEEP_ALIVE": "2s", "LLMSERVER_MEMORY_BUDGET_MB": "300",
           "LLMSERVER_FLASH_ATTN": "off"}
    with ServiceProcess("llmserver", "LLMSERVER_", env=env, command=cmd) as proc:
        yield proc


def models(server: ServiceProcess) -> dict[str, dict]:
    return {m["id"]: m for m in httpx.get(server.url + "/v1/models").json()["data"]}


def chat(server: ServiceProcess, messages: list[dict], **extra: object) -> httpx.Response:
    return httpx.post(server.url + "/v1/chat/completions", timeout=120, json={
        "messages": messages, "max_tokens": 4, "temperature": 0, **extra})


def test_the_seed_command_line_serves_the_file(server: ServiceProcess) -> None:
    listed = models(server)
    assert {"smol", "smol-wide"} <= set(listed)
    smol = listed["smol"]
    assert smol["quantization"] == "Q4_1" and smol["parameters"] > 100_000_000
    assert smol["n_ctx"] == 256 and smol["settings"]["system_prompt"] == PIRATE
    reply = chat(server, [{"role": "user", "content": "Hi"}])
    assert reply.status_code == 200 and reply.json()["model"] == "smol"  # the default
    log = server.log_path.read_text()
    assert "note: --use_mlock has no meaning in llmserver; ignored." in log


def test_per_model_system_prompt(server: ServiceProcess) -> None:
    bare = chat(server, [{"role": "user", "content": "Hi"}], model="smol").json()
    told = chat(server, [{"role": "system", "content": PIRATE},
                         {"role": "user", "content": "Hi"}], model="smol").json()
    assert bare["usage"]["prompt_tokens"] == told["usage"]["prompt_tokens"]
    assert bare["choices"][0]["message"] == told["choices"][0]["message"]


def test_keep_alive_returns_the_memory(server: ServiceProcess) -> None:
    assert chat(server, [{"role": "user", "content": "Hi"}], model="smol").status_code == 200
    assert models(server)["smol"]["loaded"]
    loaded = rss(server.proc.pid)
    wait_for(lambda: not models(server)["smol"]["loaded"], timeout=15, what="the idle unload")
    time.sleep(0.2)
    assert loaded - rss(server.proc.pid) > 60 << 20  # the 98 MB of weights went back
    # A request's keep_alive: 0 unloads at once, and the next request loads it again.
    assert chat(server, [{"role": "user", "content": "Hi"}], model="smol",
                keep_alive=0).status_code == 200
    wait_for(lambda: not models(server)["smol"]["loaded"], timeout=2, what="unload at once")
    assert chat(server, [{"role": "user", "content": "Hi"}], keep_alive="x").status_code == 400


def test_a_model_beyond_the_memory_budget_is_refused(server: ServiceProcess) -> None:
    refused = chat(server, [{"role": "user", "content": "Hi"}], model="smol-wide")
    assert refused.status_code == 507
    error = refused.json()["error"]
    assert error["code"] == "insufficient_memory"
    assert "needs about" in error["message"] and "8 slots of 2048 tokens" in error["message"]
    assert chat(server, [{"role": "user", "content": "Hi"}], model="smol").status_code == 200
    assert httpx.get(server.url + "/health").status_code == 200


def test_remove_a_model(server: ServiceProcess) -> None:
    streaming, done = threading.Event(), threading.Event()

    def long_answer() -> None:
        with httpx.stream("POST", server.url + "/v1/chat/completions", timeout=120, json={
                "model": "smol", "messages": [{"role": "user", "content": "Tell a story"}],
                "max_tokens": 200, "stream": True, "ignore_eos": True}) as r:
            for _ in r.iter_lines():
                streaming.set()
                if done.is_set():
                    break  # the client leaves: the generation stops

    reader = threading.Thread(target=long_answer)
    reader.start()
    assert streaming.wait(60)
    busy = httpx.delete(server.url + "/v1/models/smol")
    done.set()
    reader.join(120)
    assert busy.status_code == 409 and busy.json()["error"]["code"] == "model_in_use"
    gone = httpx.delete(server.url + "/v1/models/smol-wide")
    assert gone.status_code == 200 and "smol-wide" not in models(server)
    packaged = httpx.delete(server.url + f"/v1/models/{DEFAULT_MODEL}")
    assert packaged.status_code == 403
    assert httpx.delete(server.url + "/v1/models/nope").status_code == 404
