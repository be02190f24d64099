"""Every command line in the README's shell blocks runs as written (shorter where it trains),
against real services on free ports. A new command in the README without a check here fails
`test_every_readme_command_is_checked`."""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pexpect
import pytest

from tests.utils.procs import ServiceProcess
from tinyllm.procs import REPO

pytestmark = pytest.mark.slow
BIN = Path(sys.executable).parent  # curl and tinyllm resolve as in a shell


def readme_commands() -> list[str]:
    """The command lines of every ```bash block: continuations joined, comments dropped."""
    text = (REPO / "README.md").read_text()
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for line in block.replace("\\\n", " ").splitlines():
            line = re.sub(r"\s+#.*$", "", line).strip()
            if line:
                commands.append(re.sub(r"\s+", " ", line))
    return commands


# What each README command line becomes here, by its first words.
KINDS = {
    "scripts/up.sh": "setup", "scripts/test.sh": "setup", "docker compose": "compose",
    "tinyllm chat": "chat", "curl http://127.0.0.1:8000": "llmserver",
    "tinyllm ingest": "rag", "curl -F": "rag", "curl http://127.0.0.1:8001": "rag",
    "tinyllm train": "train", "tinyllm backup": "backup", "tinyllm restore": "backup",
    "curl http://127.0.0.1:5000": "chatbot", "scripts/wheelhouse.sh": "setup",
    "scripts/gpu-check.sh": "setup",  # run end to end by tests/bench/test_gpu_check.py
    "tinyllm pull": "models", "tinyllm models": "models", "tinyllm rm": "models",
    "tinyllm run": "models", "python -m llmserver": "models",
}


def kind(command: str) -> str | None:
    return next((k for prefix, k in KINDS.items() if command.startswith(prefix)), None)


def test_every_readme_command_is_checked() -> None:
    commands = readme_commands()
    assert len(commands) >= 12
    unchecked = [c for c in commands if kind(c) is None]
    assert not unchecked, f"README commands without a check in this file: {unchecked}"


def shell(command: str, cwd: Path, env: dict[str, str], timeout: float = 300
          ) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", **env}
    # `tinyllm` as the installed script would run it, with this checkout first on the path
    command = re.sub(r"^tinyllm ", f"{shlex.quote(sys.executable)} -m tinyllm ", command)
    return subprocess.run(command, shell=True, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout)


def test_setup_scripts_are_valid_shell() -> None:
    for command in (c for c in readme_commands() if kind(c) == "setup"):
        script = REPO / command.split()[0]
        assert os.access(script, os.X_OK), script
        assert subprocess.run(["bash", "-n", str(script)]).returncode == 0
    assert "tinyllm up" in (REPO / "scripts/up.sh").read_text()
    assert "pytest" in (REPO / "scripts/test.sh").read_text()


def test_backup_commands(tmp_path: Path) -> None:
    # The stack's round trip is tests/tinyllm/test_backup.py; here the README's lines, as
    # written, on an empty stack (nothing running on the ports this environment names).
    from tests.utils.procs import free_port

    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "mine.gguf").write_bytes(b"GGUF" + bytes(100))
    env = {"LLMSERVER_MODELS_DIR": str(tmp_path / "models"),
           "RAG_DATA_DIR": str(tmp_path / "rag"), "QDRANT_URL": "", "RAG_PORT": str(free_port()),
           "CHATBOT_PORT": str(free_port()),
           "TINYLLM_DATA_DIR": str(tmp_path)}
    commands = [c for c in readme_commands() if kind(c) == "backup"]
    assert [c.split()[1] for c in commands] == ["backup", "restore"]
    made = shell(commands[0], tmp_path, env)
    assert made.returncode == 0 and (tmp_path / "backup.tar.gz").is_file(), made.stderr
    (tmp_path / "models" / "mine.gguf").unlink()
    back = shell(commands[1], tmp_path, env)
    assert back.returncode == 0, back.stderr
    assert (tmp_path / "models" / "mine.gguf").read_bytes() == b"GGUF" + bytes(100)


def test_compose_command_is_the_validated_file() -> None:
    # The compose file itself is validated by tests/test_stack.py (docker-compose config).
    # Running them is the image test's work (scripts/test.sh --images).
    assert [c for c in readme_commands() if kind(c) == "compose"] == [
        "docker compose up --build",
        "docker compose --profile train run --rm trainer --train-data /train/mytext.txt "
        "--iters 500",
        "docker compose -f docker-compose.yml -f docker-compose.gpu.yml up --build"]


def test_llmserver_curl_commands(llm_server: ServiceProcess, tmp_path: Path) -> None:
    for command in (c for c in readme_commands() if kind(c) == "llmserver"):
        command = command.replace("http://127.0.0.1:8000", llm_server.url)
        result = shell(command + " -sS --fail-with-body", tmp_path, {})
        assert result.returncode == 0, (command, result.stdout, result.stderr)
        body = json.loads(result.stdout)
        assert body.get("data") or body["choices"][0]["message"]["content"], body


def one_turn(child: pexpect.spawn, label: str = "") -> None:
    """Say hi, read the answer, quit with an empty line: the chat must end cleanly."""
    child.expect_exact("you> ")
    child.sendline("Say hi")
    child.expect_exact("bot> ")
    child.expect_exact("you> ")
    child.sendline("")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0, label


def test_chat_commands(llm_server: ServiceProcess) -> None:
    for command in (c for c in readme_commands() if kind(c) == "chat"):
        args = shlex.split(command.replace("http://127.0.0.1:8000", llm_server.url))[2:]
        # The bare `tinyllm chat` targets the chatbot; here its OPENAI_BASE_URL is llmserver.
        env = {**os.environ, "OPENAI_BASE_URL": llm_server.url + "/v1"}
        child = pexpect.spawn(sys.executable, ["-m", "tinyllm", "chat", *args, "--max-tokens",
                                               "8"], cwd=str(REPO), env=env, encoding="utf-8",
                              timeout=90)
        one_turn(child, command)


def test_models_commands_in_order(tmp_path: Path) -> None:
    """The Models section against a loopback hub (HF_ENDPOINT) that serves SmolLM2's file
    under the seed's URL: pull, list, the seed's server command line, run, rm."""
    from llmserver.models import DEFAULT_MODEL, packaged_models
    from tests.utils.fake_hub import HubServer
    from tests.utils.procs import free_port

    commands = [c for c in readme_commands() if kind(c) == "models"]
    assert [c.split()[1] if c.startswith("tinyllm") else "llmserver" for c in commands] == \
        ["pull", "models", "run", "rm", "llmserver"]
    pull, listing, run, rm, serve = commands
    url = shlex.split(pull)[2]
    repo, file = "/".join(url.split("/")[3:5]), url.rsplit("/", 1)[1]
    name = file.removesuffix(".gguf").lower()
    env = {"LLMSERVER_MODELS_DIR": str(tmp_path / "models"), "LLMSERVER_PORT": str(free_port()),
           "LLMSERVER_FLASH_ATTN": "off"}
    with HubServer() as hub:
        hub.add(repo, file, packaged_models()[DEFAULT_MODEL].read_bytes())
        env["HF_ENDPOINT"] = hub.url
        env["HF_HUB_OFFLINE"] = "0"  # this process's rag imports set it
        done = shell(pull + " --quiet", tmp_path, env)
        assert done.returncode == 0, done.stderr
    listed = shell(listing, tmp_path, env)
    assert listed.returncode == 0 and any(line.startswith(name) and "Q4_1" in line
                                          for line in listed.stdout.splitlines())
    # The seed's flags, on this test's port; ./models/ is the test's folder.
    args = [a.replace("./", f"{tmp_path}/", 1) for a in shlex.split(serve)[3:]]
    served_env = {k: v for k, v in env.items() if k != "LLMSERVER_PORT"}
    with ServiceProcess("llmserver", "LLMSERVER_", env=served_env, command=[
            sys.executable, "-m", "llmserver", *args]) as server:
        assert Path(args[1]).is_file()
        ids = [m["id"] for m in httpx.get(server.url + "/v1/models").json()["data"]]
        assert name in ids
        assert "has no GPU to offload to" in server.log()
    child = pexpect.spawn(sys.executable, ["-m", "tinyllm", *shlex.split(run)[1:],
                                           "--max-tokens", "8"], cwd=str(tmp_path),
                          env={**os.environ, **env}, encoding="utf-8", timeout=120)
    child.expect(f"Chatting with {name}")
    one_turn(child)
    removed = shell(rm, tmp_path, env)
    assert removed.returncode == 0 and not (tmp_path / "models" / file).exists()


@pytest.fixture(scope="module")
def rag(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    data = tmp_path_factory.mktemp("rag-data")
    with ServiceProcess("rag", "RAG_", env={"RAG_DATA_DIR": str(data), "QDRANT_URL": ""},
                        health_timeout=180) as proc:
        yield proc


def test_rag_commands_in_order(rag: ServiceProcess, tmp_path: Path) -> None:
    from fpdf import FPDF

    home = tmp_path / "home"
    (home / "notes").mkdir(parents=True)
    (home / "notes" / "plan.md").write_text("# Plan\n\nThe lighthouse keeper feeds the cat.\n")
    pdf = FPDF()
    pdf.set_font("Helvetica", size=11)
    pdf.add_page()
    pdf.multi_cell(0, 6, "Quarterly report. In Q3 revenue rose by twelve percent, driven by "
                         "exports of wooden boats.")
    (tmp_path / "report.pdf").write_bytes(bytes(pdf.output()))
    env = {"HOME": str(home), "TINYLLM_RAG_URL": rag.url}
    job_id = ""
    for command in (c for c in readme_commands() if kind(c) == "rag"):
        command = command.replace("http://127.0.0.1:8001", rag.url).replace("JOB_ID", job_id)
        if command.startswith("curl"):
            command += " -sS --fail-with-body"
        result = shell(command, tmp_path, env)
        assert result.returncode == 0, (command, result.stdout[-2000:], result.stderr[-2000:])
        if command.startswith("curl -F"):
            job_id = json.loads(result.stdout)["job"]["id"]
            deadline = time.monotonic() + 120  # the next line reads the job; let it finish
            while shell(f"curl -sS {rag.url}/jobs/{job_id}", tmp_path, env).stdout.find(
                    '"done"') < 0:
                assert time.monotonic() < deadline, "the upload job did not finish"
                time.sleep(0.5)
        elif "/jobs/" in command:
            assert json.loads(result.stdout)["status"] == "done"
        elif "/search" in command:
            hits = json.loads(result.stdout)["results"]
            assert hits and hits[0]["document"] == "report.pdf", hits
            assert "revenue" in hits[0]["text"]
    assert job_id, "the README's background upload ran"


# Shorter runs of the README's train lines: fewer steps, a smaller network.
SHORTER = {"--iters 500": "--iters 2", "--predict 64": "--predict 4", "--embd 256": "--embd 64",
           "--head 8": "--head 4", "--layer 16": "--layer 2", "-b 32": "-b 8",
           "--adam-iter 16": "--adam-iter 2", "-t 4": "-t 2"}


def test_train_commands_short(tmp_path: Path) -> None:
    commands = [c for c in readme_commands() if kind(c) == "train"]
    assert len(commands) == 2
    licenses = Path("/usr/share/common-licenses")
    (tmp_path / "mytext.txt").write_text((licenses / "GPL-3").read_text())
    from tests.trainer.test_seed_command import smollm2

    (tmp_path / smollm2().name).symlink_to(smollm2())  # the file the README's line names
    for command in commands:
        short = command
        for old, new in SHORTER.items():
            short = re.sub(rf"(?<![\w-]){re.escape(old)}(?!\w)", new, short)
        assert "--embd 64" in short, f"the README's train line changed: shorten it here: {command}"
        result = shell(short + " --no-progress", tmp_path, {"TINYLLM_DATA_DIR": str(tmp_path)},
                       timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        assert "sample:" in result.stdout
    assert (tmp_path / "models" / "tiny-mytext.gguf").is_file()
    # a bare --model-out goes into the models folder; the checkpoint is where it was named
    assert (tmp_path / "models" / "ggml-tiny-f32.gguf").is_file()
    assert (tmp_path / "chk.bin").is_file()


def test_chatbot_curl_command(llm_server: ServiceProcess, rag: ServiceProcess,
                              tmp_path: Path) -> None:
    env = {"CHATBOT_LLM_URLS": llm_server.url + "/v1", "CHATBOT_RAG_URL": rag.url,
           "CHATBOT_API_KEY": "readme-key", "CHATBOT_ANSWER_TOKENS": "16",
           "CHATBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'chat.db'}"}
    commands = [c for c in readme_commands() if kind(c) == "chatbot"]
    assert commands
    # The README's collection "notes" (the rag commands above make it too; the same bytes add
    # nothing).
    reply = httpx.post(f"{rag.url}/collections/notes/documents", timeout=120,
                       files={"files": ("hi.txt", b"Notes: say hi politely to everyone.")})
    assert reply.status_code == 200, reply.text
    with ServiceProcess("chatbot", "CHATBOT_", env=env) as chatbot:
        for command in commands:
            command = command.replace("http://127.0.0.1:5000", chatbot.url)
            # curl -d, with the bearer key: the chatbot reads the body as JSON
            result = shell(command + " -sS --fail-with-body", tmp_path, {"KEY": "readme-key"})
            assert result.returncode == 0, (command, result.stdout, result.stderr)
            body = json.loads(result.stdout)
            assert body["choices"][0]["message"]["content"], body
            assert "sources" in body, body
            refused = shell(command + " -sS", tmp_path, {"KEY": "wrong"})
            assert json.loads(refused.stdout)["error"]["type"] == "authentication_error"
