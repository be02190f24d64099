"""The CPU images built with no network and run as a compose stack, end to end.

Builds llmserver (cpu target), rag (onnx target, what compose runs, and the cpu target),
chatbot and trainer from the stand-in base and the wheelhouse, starts them with
docker-compose.yml plus tests/images/compose.test.yml (host networking on loopback, rag
embedded, chatbot accounts with an admin and a service key set through compose's variables),
then drives them as a user would: the OpenAI SDK on llmserver and the chatbot, an upload and
a search on rag, an answer with sources, a trainer run into the shared models volume, and
`down` / `up` keeping the named volumes' data (rag's index, the chatbot's database, models).
Runs with `scripts/test.sh --images` (marker `images`); needs root or a running engine.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
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
MAX_MB = {"rag:0.1.0": 700, "rag:cpu": 1500, "chatbot:0.1.0": 300}
IMAGES = ("llmserver:0.1.0", "rag:0.1.0", "rag:cpu", "chatbot:0.1.0", "trainer:0.1.0")


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
    chatbot_key: str
    admin_password: str
    personal_key: list[str] = field(default_factory=list)  # made by one test, used by the last

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
    engine.build("rag", "--target", "onnx")
    engine.build("rag", "--target", "cpu", tag="cpu")
    engine.build("chatbot", "--build-arg", "UI_LIBS=wheelhouse")
    engine.build("trainer")
    print(f"images: base+wheelhouse {t1 - t0:.0f} s, builds {time.monotonic() - t1:.0f} s")  # noqa: T201
    train_dir = tmp_path_factory.mktemp("train")
    licences = Path("/usr/share/common-licenses")
    (train_dir / "licences.txt").write_text(
        "\n".join((licences / n).read_text() for n in ("GPL-3", "GPL-2", "Apache-2.0")))
    train_dir.chmod(0o755)
    ports = {name: free_port() for name in SERVICES}
    key, password = f"sk-test-{secrets.token_urlsafe(16)}", secrets.token_urlsafe(16)
    # The chatbot's accounts as compose configures them: its variables, read from the env.
    env = {**os.environ, "COMPOSE_FILE": "", "TRAIN_DATA_DIR": str(train_dir),
           "CHATBOT_API_KEY": key, "CHATBOT_ADMIN_USER": "admin",
           "CHATBOT_ADMIN_PASSWORD": password,
           **{f"TEST_{name.upper()}_PORT": str(port) for name, port in ports.items()}}
    s = Stack(env=env, ports=ports, train_dir=train_dir, chatbot_key=key,
              admin_password=password,
              compose_file=merged_compose_file(env, train_dir.parent / "compose.yml"))
    s.compose("down", "-v", "--remove-orphans")
    s.up()
    try:
        yield s
    finally:
        s.compose("down", "-v", "--remove-orphans")


def test_image_sizes(stack: Stack) -> None:
    sizes = {name: engine.image_mb(f"tinyllm/{name}") for name in IMAGES}
    print("image sizes, MB:", {k: round(v) for k, v in sizes.items()})  # noqa: T201
    for name, limit in MAX_MB.items():
        assert sizes[name] <= limit, f"{name}: {sizes[name]:.0f} MB > {limit} MB"


# The embedder as the service makes it from the image's settings (RAG_EMBEDDING_BACKEND...).
EMBED = ("import json, pathlib; from rag.config import Settings; from rag.embedder import "
         "Embedder; s = Settings(); e = Embedder(s.embedding_model, 32, 'cpu', "
         "s.embedding_backend, s.embedding_onnx_file, pathlib.Path('/tmp/onnx')); "
         "print(e.backend, json.dumps(e.encode(['the violet lighthouse']).tolist()[0]))")


def embed_in(image: str) -> tuple[str, list[float]]:
    out = engine.docker("run", "--rm", "--network=none", image, "python", "-c", EMBED,
                        timeout=300).stdout.strip().splitlines()[-1]
    backend, vector = out.split(" ", 1)
    return backend, json.loads(vector)


def test_rag_onnx_image_has_no_torch_and_embeds_as_the_cpu_image_does(stack: Stack) -> None:
    image = "tinyllm/rag:0.1.0"
    missing = engine.docker("run", "--rm", "--network=none", image, "python", "-c",
                            "import importlib.util as u; print([m for m in ('torch', "
                            "'transformers', 'sentence_transformers') if u.find_spec(m)])"
                            ).stdout.strip()
    assert missing == "[]", missing
    onnx_backend, onnx = embed_in(image)
    torch_backend, torch = embed_in("tinyllm/rag:cpu")
    assert (onnx_backend, torch_backend) == ("onnx", "torch")
    cosine = sum(a * b for a, b in zip(onnx, torch, strict=True))  # both unit length
    assert cosine > 0.98, cosine


def test_containers_run_as_non_root_with_writable_volumes(stack: Stack) -> None:
    for service, volume in (("llmserver", "/models"), ("rag", "/data"), ("chatbot", "/data")):
        cid = stack.container(service)
        assert engine.docker("exec", cid, "id", "-u").stdout.strip() == "1000", service
        probe = f"{volume}/.write-probe"
        engine.docker("exec", cid, "sh", "-c", f"touch {probe} && rm {probe}")
        if service == "chatbot":  # its accounts database (SQLite) is in the volume, its own
            owner = engine.docker("exec", cid, "stat", "-c", "%u",
                                  "/data/chatbot/chatbot.db").stdout.strip()
            assert owner == "1000", owner
        # No secret, data or local environment entered the image.
        listing = engine.docker("exec", cid, "sh", "-c",
                                "ls -a /app /src; find / -xdev \\( -name .env -o -name "
                                "node_modules -o -name .venv \\) 2>/dev/null; true").stdout
        assert ".env\n" not in listing and "/.venv" not in listing, listing
        assert "node_modules" not in listing, listing


def personal_key(stack: Stack) -> str:
    """The admin (made at first start from compose's variables) logs in and makes a key."""
    if not stack.personal_key:
        with httpx.Client(base_url=stack.url("chatbot"), timeout=60) as client:
            r = client.post("/api/auth/login", json={"username": "admin",
                                                     "password": stack.admin_password})
            assert r.status_code == 200, r.text
            r = client.post("/api/keys", json={"name": "image test"})
            assert r.status_code == 201, r.text
            stack.personal_key.append(r.json()["key"])
    return stack.personal_key[0]


def test_chatbot_needs_a_key(stack: Stack) -> None:
    r = httpx.get(f"{stack.url('chatbot')}/v1/models", timeout=30)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "missing_api_key", r.text
    for key in (stack.chatbot_key, personal_key(stack)):
        r = httpx.get(f"{stack.url('chatbot')}/v1/models", timeout=30,
                      headers={"Authorization": f"Bearer {key}"})
        assert r.status_code == 200, r.text


def test_openai_sdk_on_llmserver_and_chatbot(stack: Stack) -> None:
    for service in ("llmserver", "chatbot"):
        key = personal_key(stack) if service == "chatbot" else "none"
        client = OpenAI(base_url=f"{stack.url(service)}/v1", api_key=key, timeout=300)
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
    r = httpx.post(f"{stack.url('chatbot')}/v1/chat/completions", timeout=300,
                   headers={"Authorization": f"Bearer {stack.chatbot_key}"}, json={
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
    r = httpx.get(f"{stack.url('chatbot')}/v1/models", timeout=30,
                  headers={"Authorization": f"Bearer {stack.chatbot_key}"})
    assert r.status_code == 200, r.text
    assert "tiny-licences" in [m["id"] for m in r.json()["data"]], "the chatbot lists it too"
    r = httpx.post(f"{stack.url('llmserver')}/v1/completions", timeout=120,
                   json={"model": "tiny-licences", "prompt": "The", "max_tokens": 4})
    assert r.status_code == 200, r.text


def test_down_and_up_keep_the_volumes(stack: Stack) -> None:
    """Runs last: the document, the chatbot's accounts and the trained model outlive their
    containers."""
    key = personal_key(stack)
    before = search(stack)
    assert before, "the rag test uploaded a document"
    old = stack.container("rag")
    stack.compose("down")
    stack.up()
    assert stack.container("rag") != old
    assert [r["text"] for r in search(stack)] == [r["text"] for r in before]
    models = httpx.get(f"{stack.url('llmserver')}/v1/models", timeout=30).json()["data"]
    assert "tiny-licences" in [m["id"] for m in models]
    r = httpx.get(f"{stack.url('chatbot')}/v1/models", timeout=30,
                  headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
