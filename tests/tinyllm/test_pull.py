"""`tinyllm pull` against a hub on loopback (HF_ENDPOINT) serving a model the trainer made:
seed-style URLs, quantisation picks, resume after a dropped connection and after Ctrl-C, and
faults that must leave nothing in the models folder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pexpect
import pytest

from llmserver.models import DEFAULT_MODEL
from tests.trainer.conftest import tiny_settings
from tests.utils.fake_hub import FakeHub, Faults, HubServer
from tests.utils.procs import free_port, wait_for
from tinyllm import pull as pulling
from trainer.train import train

REPO = "TheBloke/Tiny-GGUF"
FILE = "tiny.Q8_0.gguf"
LICENSE = Path("/usr/share/common-licenses/GPL-3")


@pytest.fixture(scope="module")
def gguf(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    out = tmp_path_factory.mktemp("pulled-model")
    result = train(tiny_settings(LICENSE, out, iters=4, eval_every=4,
                                 model_out=Path("tiny.gguf")))
    return result.model_path.read_bytes()


@pytest.fixture()
def hub(gguf: bytes, monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeHub]:
    with HubServer() as served:
        served.add(REPO, FILE, gguf)
        served.add(REPO, "tiny.Q4_K_M.gguf", gguf)
        monkeypatch.setenv("HF_ENDPOINT", served.url)
        monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
        yield served


def ggufs(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.glob("*.gguf"))


def test_seed_url_is_pulled_listed_and_answers(hub: FakeHub, gguf: bytes, llm_server,
                                               models_dir: Path) -> None:
    seed = f"https://huggingface.co/{REPO}/resolve/main/{FILE}"
    done = subprocess.run([sys.executable, "-m", "tinyllm", "pull", seed, "--models-dir",
                           str(models_dir)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"})
    assert done.returncode == 0, done.stderr
    assert "ready as 'tiny.q8_0'" in done.stdout
    assert (models_dir / FILE).read_bytes() == gguf
    assert pulling.sources(models_dir)[FILE]["source"] == seed
    ids = [m["id"] for m in httpx.get(llm_server.url + "/v1/models").json()["data"]]
    assert "tiny.q8_0" in ids
    reply = httpx.post(llm_server.url + "/v1/completions", timeout=120, json={
        "model": "tiny.q8_0", "prompt": "The licence", "max_tokens": 4, "temperature": 0})
    assert reply.status_code == 200, reply.text
    assert reply.json()["model"] == "tiny.q8_0" and reply.json()["usage"]["completion_tokens"]
    (models_dir / FILE).unlink()  # the session's other tests see the folder as it was


def test_quant_pick_and_short_form(hub: FakeHub, tmp_path: Path) -> None:
    assert pulling.pull(f"{REPO}:q4_k_m", tmp_path, quiet=True).name == "tiny.Q4_K_M.gguf"
    assert pulling.pull(f"{REPO}/{FILE}", tmp_path, quiet=True).name == FILE
    with pytest.raises(pulling.PullError, match="has no Q5_K_S GGUF. It has: Q4_K_M, Q8_0"):
        pulling.pull(f"{REPO}:Q5_K_S", tmp_path, quiet=True)


def test_a_dropped_connection_resumes_where_it_stopped(hub: FakeHub, gguf: bytes,
                                                       tmp_path: Path) -> None:
    hub.faults = Faults(drop_after=len(gguf) // 2)
    path = pulling.pull(f"{REPO}/{FILE}", tmp_path, quiet=True)
    assert path.read_bytes() == gguf
    ranges = [r for m, p, r in hub.requests if m == "GET" and p.endswith(FILE)]
    # The second request asked for exactly the rest.
    assert ranges == ["", f"bytes={len(gguf) // 2}-"]


def test_ctrl_c_then_the_same_command_resumes(hub: FakeHub, gguf: bytes,
                                              tmp_path: Path) -> None:
    hub.faults = Faults(delay_s=0.3, delay_after=65536)
    cmd = [sys.executable, "-m", "tinyllm", "pull", f"{REPO}/{FILE}", "--models-dir",
           str(tmp_path), "--quiet"]
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    part = tmp_path / ".pull" / (FILE + ".part")
    wait_for(lambda: part.exists() and part.stat().st_size >= 65536, timeout=60,
             what="a partial download")
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130 and "run the same command again to resume" in err
    assert ggufs(tmp_path) == []  # nothing half-written in the models folder
    kept = part.stat().st_size
    hub.faults = Faults()
    hub.requests.clear()
    assert subprocess.run(cmd, env=env, timeout=120, capture_output=True).returncode == 0
    assert (tmp_path / FILE).read_bytes() == gguf
    assert [r for m, p, r in hub.requests if m == "GET" and p.endswith(FILE)] == \
        [f"bytes={kept}-"]


@pytest.mark.parametrize("faults", [Faults(corrupt=True), Faults(truncate=300_000)],
                         ids=["wrong-checksum", "truncated"])
def test_a_bad_download_never_appears(hub: FakeHub, tmp_path: Path, faults: Faults) -> None:
    hub.faults = faults
    with pytest.raises(pulling.PullError, match="corrupt"):
        pulling.pull(f"{REPO}/{FILE}", tmp_path, quiet=True)
    assert ggufs(tmp_path) == [] and not list((tmp_path / ".pull").glob("*.gguf"))


def test_a_file_that_is_not_a_model_never_appears(hub: FakeHub, tmp_path: Path,
                                                  gguf: bytes) -> None:
    hub.add(REPO, "page.gguf", b"<html>Sign in to download</html>" * 100)
    hub.add(REPO, "cut.gguf", gguf[:len(gguf) - 1000])
    with pytest.raises(pulling.PullError, match="not a GGUF file"):
        pulling.pull(f"{REPO}/page.gguf", tmp_path, quiet=True)
    with pytest.raises(pulling.PullError, match="truncated: its tensors need"):
        pulling.pull(f"{REPO}/cut.gguf", tmp_path, quiet=True)
    assert ggufs(tmp_path) == []


def test_clear_errors_name_the_url(hub: FakeHub, tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(pulling.PullError, match=rf"{hub.url}/{REPO}/resolve/main/nope.gguf: "
                                                "not found"):
        pulling.pull(f"{REPO}/nope.gguf", tmp_path, quiet=True)
    with pytest.raises(pulling.PullError, match="only HTTPS URLs"):
        pulling.pull("http://example.org/a.gguf", tmp_path, quiet=True)
    with pytest.raises(pulling.PullError, match="names no model"):
        pulling.pull("llama", tmp_path, quiet=True)
    # A full disk is found before anything is downloaded.
    monkeypatch.setattr(pulling.shutil, "disk_usage",
                        lambda _path: type("U", (), {"free": 1000})())
    hub.requests.clear()
    with pytest.raises(pulling.PullError, match="Not enough disk space"):
        pulling.pull(f"{REPO}/{FILE}", tmp_path, quiet=True)
    assert not [r for r in hub.requests if r[0] == "GET"]
    monkeypatch.setenv("HF_ENDPOINT", "http://127.0.0.1:9")  # nothing listens
    with pytest.raises(pulling.PullError, match="cannot reach the hub"):
        pulling.pull(f"{REPO}/{FILE}", tmp_path, quiet=True)


def test_run_pulls_then_chats_and_models_and_rm_list_and_remove(hub: FakeHub,
                                                                tmp_path: Path) -> None:
    env = {**os.environ, "HF_ENDPOINT": hub.url, "HF_HUB_OFFLINE": "0",
           "LLMSERVER_MODELS_DIR": str(tmp_path),
           "LLMSERVER_PORT": str(free_port()), "LLMSERVER_FLASH_ATTN": "off"}
    child = pexpect.spawn(sys.executable, ["-m", "tinyllm", "run", f"{REPO}/{FILE}",
                                           "--temperature", "0", "--max-tokens", "4"],
                          env=env, encoding="utf-8", timeout=120, dimensions=(40, 200))
    child.expect("starting llmserver with tiny.q8_0")
    child.expect("Chatting with tiny.q8_0")
    child.expect_exact("you> ")
    child.sendline("The licence")
    child.expect_exact("you> ")
    child.sendline("")  # an empty line quits, and the llmserver it started stops
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0
    listed = subprocess.run([sys.executable, "-m", "tinyllm", "models"], env=env,
                            capture_output=True, text=True, timeout=60).stdout
    row = next(line for line in listed.splitlines() if line.startswith("tiny.q8_0"))
    assert "670.0 KB" in row or "KB" in row
    assert f"{REPO}/{FILE}" in row and "LOADED unknown" in listed  # nothing runs now
    removed = subprocess.run([sys.executable, "-m", "tinyllm", "rm", "tiny.q8_0"], env=env,
                             capture_output=True, text=True, timeout=60)
    assert removed.returncode == 0 and ggufs(tmp_path) == []
    packaged = subprocess.run([sys.executable, "-m", "tinyllm", "rm", DEFAULT_MODEL], env=env,
                              capture_output=True, text=True, timeout=60)
    assert packaged.returncode == 1 and "cannot be removed" in packaged.stderr
