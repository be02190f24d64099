"""The CPU images built with no network and run as a compose stack, end to end.

Builds llmserver (cpu target), rag, chatbot and trainer from the stand-in base and the
wheelhouse, starts them with docker-compose.yml plus tests/images/compose.test.yml (host
networking on loopback, rag embedded), then drives them as a user would: the OpenAI SDK on
llmserver and the chatbot, an upload and a search on rag, an answer with sources, a trainer
run into the shared models volume, and `down` / `up` keeping the named volumes' data.
Runs with `scripts/test.sh --images` (marker `images`); needs root or a running engine.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import yaml
from openai import OpenAI

from services.config import REPO_ROOT
from tests.images import engine
from tests.utils.procs import free_port

pytestmark = [pytest.mark.images, pytest.mark.slow, pytest.mark.timeout(3600)]

PROJECT = "tinyllm-imagetest"
SERVICES = ("llmserver", "rag", "chatbot")
FACT = ("Glimmerfjord harbour notes. The lighthouse of Glimmerfjord was painted violet in 1987 "
        "and its lamp can be seen from forty kilometres away.\n\n"
        "Fishing boats leave the harbour at dawn and return before noon.")
# Issue targets, in MB as `docker image ls` counts them (uncompressed).
MAX_MB = {"rag": 1500, "chatbot": 300}


COMPOSE = shutil.which("docker-compose") or "docker-compose"


def merged_compose_file(env: dict[str, str], out: Path) -> Path:
    """docker-compose.yml with the test override, as compose itself merges them, less the
    published ports: host networking publishes nothing, and docker-compose 1.x refuses the
    two together (its overrides can add to a list, not empty it)."""
    result = subprocess.run([COMPOSE, "-f", "docker-compose.yml", "-f",
                             "tests/images/compose.test.yml", "--profile", "train", "config"],
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    spec = yaml.safe_load(result.stdout)
    for service in spec["services"].values():
        if service.get("network_mode") == "host":
            service.pop("ports", None)
    out.write_text(yaml.safe_dump(spec))
    return out


@dataclass
class Stack:
    env: dict[str, str]
    ports: dict[str, int]
    train_dir: Path
    compose_file: Path

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{self.ports[service]}"

    def compose(self, *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        result = subprocess.run(
            [COMPOSE, "-p", PROJECT, "--project-directory", str(REPO_ROOT),
             "-f", str(self.compose_file), *args],
            cwd=REPO_ROOT, env=self.env, capture_output=True, text=True, timeout=timeout)
        assert result.returncode == 0, f"compose {args}: {result.stderr[-3000:]}"
        return result

    def container(self, service: str) -> str:
        return self.compose("ps", "-q", service).stdout.strip()

    def up(self) -> None:
        self.compose("up", "-d", "--no-build", "--no-deps", *SERVICES)
        deadline = time.monotonic() + 600
        for service in SERVICES:
            status = ""
            while status != "healthy":
                assert time.monotonic() < deadline, (
                    f"{service} is {status}: {self.compose('logs', service).stdout[-3000:]}")
                time.sleep(2)
                status = engine.docker("inspect", "-f", "{{.State.Health.Status}}",
                                       self.container(service)).stdout.strip()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    why = engine.ensure_engine()
    if why:
        pytest.skip(why)
    t0 = time.monotonic()
    engine.ensure_base()
    engine.ensure_wheelhouse()
    t1 = time.monotonic()
    engine.build("llmserver", "--target", "cpu")
    engine.build("rag")
    engine.build("chatbot", "--build-arg", "UI_LIBS=wheelhouse")
    engine.build("trainer")
    print(f"images: base+wheelhouse {t1 - t0:.0f} s, builds {time.monotonic() - t1:.0f} s")  # noqa: T201
    train_dir = tmp_path_factory.mktemp("train")
    licences = Path("/usr/share/common-licenses")
    (train_dir / "licences.txt").write_text(
        "\n".join((licences / n).read_text() for n in ("GPL-3", "GPL-2", "Apache-2.0")))
    train_dir.chmod(0o755)
    ports = {name: free_port() for name in SERVICES}
    env = {**os.environ, "COMPOSE_FILE": "", "TRAIN_DATA_DIR": str(train_dir),
           **{f"TEST_{name.upper()}_PORT": str(port) for name, port in ports.items()}}
    s = Stack(env=env, ports=ports, train_dir=train_dir,
              compose_file=merged_compose_file(env, train_dir.parent / "compose.yml"))
    s.compose("down", "-v", "--remove-orphans")
    s.up()
    try:
        yield s
    finally:
        s.compose("down", "-v", "--remove-orphans")


def test_image_sizes(stack: Stack) -> None:
    sizes = {name: engine.image_mb(f"tinyllm/{name}:0.1.0")
             for name in ("llmserver", "rag", "chatbot", "trainer")}
    print("image sizes, MB:", {k: round(v) for k, v in sizes.items()})  # noqa: T201
    for name, limit in MAX_MB.items():
        assert sizes[name] <= limit, f"{name}: {sizes[name]:.0f} MB > {limit} MB"


def test_containers_run_as_non_root_with_writable_volumes(stack: Stack) -> None:
    for service, volume in (("llmserver", "/models"), ("rag", "/data"), ("chatbot", "/data")):
        cid = stack.container(service)
        assert engine.docker("exec", cid, "id", "-u").stdout.strip() == "1000", service
        probe = f"{volume}/.write-probe"
        engine.docker("exec", cid, "sh", "-c", f"touch {probe} && rm {probe}")
        # No secret, data or local environment entered the image.
        listing = engine.docker("exec", cid, "sh", "-c",
                                "ls -a /app /src; find / -xdev \\( -name .env -o -name "
                                "node_modules -o -name .venv \\) 2>/dev/null; true").stdout
        assert ".env\n" not in listing and "/.venv" not in listing, listing
        assert "node_modules" not in listing, listing


def test_openai_sdk_on_llmserver_and_chatbot(stack: Stack) -> None:
    for service in ("llmserver", "chatbot"):
        client = OpenAI(base_url=f"{stack.url(service)}/v1", api_key="none", timeout=300)
        assert "smollm2-135m-instruct" in [m.id for m in client.models.list()]
        reply = client.chat.completions.create(
            model="smollm2-135m-instruct", max_tokens=12, temperature=0,
            messages=[{"role": "user", "content": "Name the capital of France."}])
        assert reply.choices[0].message.content, service
        chunks = list(client.chat.completions.create(
            model="smollm2-135m-instruct", max_tokens=8, stream=True,
            messages=[{"role": "user", "content": "Count to three."}]))
        assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices), service


def upload_and_search(stack: Stack) -> None:
    with httpx.Client(base_url=stack.url("rag"), timeout=300) as client:
        r = client.post("/collections/harbour/documents",
                        files={"files": ("glimmerfjord.txt", FACT.encode(), "text/plain")})
        assert r.status_code == 200, r.text
        assert r.json()["documents"][0]["chunks"] >= 1


def search(stack: Stack) -> list[dict]:
    r = httpx.post(f"{stack.url('rag')}/search", timeout=120,
                   json={"query": "what colour is the lighthouse?", "collections": ["harbour"]})
    assert r.status_code == 200, r.text
    return r.json()["results"]


def test_rag_upload_search_and_an_answer_with_sources(stack: Stack) -> None:
    upload_and_search(stack)
    results = search(stack)
    assert results[0]["document"] == "glimmerfjord.txt" and "violet" in results[0]["text"]
    r = httpx.post(f"{stack.url('chatbot')}/v1/chat/completions", timeout=300, json={
        "model": "smollm2-135m-instruct", "max_tokens": 32, "collection": "harbour",
        "messages": [{"role": "user", "content": "What colour is the Glimmerfjord lighthouse?"}]})
    assert r.status_code == 200, r.text
    sources = r.json()["sources"]
    assert sources[0]["document"] == "glimmerfjord.txt" and "violet" in sources[0]["snippet"]


def test_trainer_writes_a_model_that_llmserver_lists(stack: Stack) -> None:
    stack.compose("--profile", "train", "run", "--rm", "trainer", "--train-data",
                  "/train/licences.txt", "--ctx", "16", "--embd", "32", "--head", "2",
                  "--layer", "1", "--batch", "4", "--iters", "8", "--eval-every", "4",
                  "--vocab-size", "300", "--predict", "4", "--no-progress", timeout=900)
    models = httpx.get(f"{stack.url('llmserver')}/v1/models", timeout=30).json()["data"]
    assert "tiny-licences" in [m["id"] for m in models]
    r = httpx.post(f"{stack.url('llmserver')}/v1/completions", timeout=120,
                   json={"model": "tiny-licences", "prompt": "The", "max_tokens": 4})
    assert r.status_code == 200, r.text


def test_down_and_up_keep_the_volumes(stack: Stack) -> None:
    """Runs last: the document and the trained model outlive their containers."""
    before = search(stack)
    assert before, "the rag test uploaded a document"
    old = stack.container("rag")
    stack.compose("down")
    stack.up()
    assert stack.container("rag") != old
    assert [r["text"] for r in search(stack)] == [r["text"] for r in before]
    models = httpx.get(f"{stack.url('llmserver')}/v1/models", timeout=30).json()["data"]
    assert "tiny-licences" in [m["id"] for m in models]
