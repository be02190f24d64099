"""An interrupted test session leaves no process behind: a pytest session in a child starts a
real chatbot and a stand-in service that leaves an orphan of its own, and is sent SIGTERM
(what `timeout` sends) or SIGKILL once they run; then nothing of theirs may be left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.utils.procs import _stat, running, wait_for
from tinyllm.procs import REPO

pytestmark = pytest.mark.slow

# The session run in a child: its services' pids, process groups and the finalisers it ran
# go to OUT as they happen; its one test then waits to be interrupted.
SESSION = '''
import json, os, sys, time
from pathlib import Path

import pytest

from tests.chatbot.conftest import chatbot_env
from tests.chatbot.fake_llm import fake_llm
from tests.utils.procs import ServiceProcess

OUT = Path(os.environ["SESSION_OUT"])
# A service that starts a child of its own, which does not die with it: an orphan in its
# process group once the service is stopped.
STANDIN = """
import http.server, os, subprocess, sys
if os.environ.get("STANDIN_ORPHAN"):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    open(os.environ["STANDIN_ORPHAN"], "w").write(str(child.pid))
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b'{"status": "ok"}')
http.server.HTTPServer(("127.0.0.1", int(os.environ["STANDIN_PORT"])), Health).serve_forever()
"""


@pytest.fixture(scope="session")
def services():
    started = []
    standin_env = {"STANDIN_ORPHAN": str(OUT / "orphan")} if os.environ["WITH_ORPHAN"] else {}
    with ServiceProcess("standin", "STANDIN_", env=standin_env,
                        command=[sys.executable, "-c", STANDIN], health_timeout=60) as standin:
        started.append(standin)
        if os.environ["WITH_CHATBOT"]:
            with fake_llm("Hello.") as llm, \
                    ServiceProcess("chatbot", "CHATBOT_", env=chatbot_env(llm)) as bot:
                started.append(bot)
                yield started
        else:
            yield started
    (OUT / "finalised").touch()


def test_waits_to_be_interrupted(services):
    pids = [s.pid for s in services]
    (OUT / "pids.json").write_text(json.dumps(pids))
    time.sleep(600)
'''


def group_of(pid: int) -> int | None:
    stat = _stat(pid)
    return int(stat[2]) if stat else None


def members(groups: set[int]) -> list[int]:
    """Live processes in any of `groups`."""
    return [int(p.name) for p in Path("/proc").iterdir() if p.name.isdigit()
            and (stat := _stat(p.name)) and stat[0] != "Z" and int(stat[2]) in groups]


@pytest.mark.parametrize("sig,with_chatbot", [(signal.SIGTERM, True), (signal.SIGKILL, False)],
                         ids=["sigterm", "sigkill"])
def test_interrupted_session_leaves_no_process(tmp_path: Path, sig: signal.Signals,
                                               with_chatbot: bool) -> None:
    (tmp_path / "test_session.py").write_text(SESSION)
    out = tmp_path / "out"
    out.mkdir()
    # SIGKILL runs no finaliser: only the kernel's death signal is left, which reaches the
    # services but not an orphan of theirs (a service's children must die with it, as rag's
    # encoder does), so that case runs none.
    orphan = sig == signal.SIGTERM
    env = {**os.environ, "SESSION_OUT": str(out), "WITH_ORPHAN": "1" if orphan else "",
           "WITH_CHATBOT": "1" if with_chatbot else "", "PYTEST_DISABLE_PLUGIN_AUTOLOAD": "1"}
    with open(tmp_path / "session.log", "wb") as log:
        session = subprocess.Popen(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p",
             "tests.conftest", "-c", os.devnull, "--rootdir", str(tmp_path),
             str(tmp_path / "test_session.py")],
            cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    groups: set[int] = set()
    try:
        wait_for(lambda: (out / "pids.json").exists() or session.poll() is not None, 120,
                 "the session's services to start")
        assert session.poll() is None, (tmp_path / "session.log").read_text()[-3000:]
        pids = json.loads((out / "pids.json").read_text())
        if orphan:
            pids.append(int((out / "orphan").read_text()))
        assert len(pids) == 2 + with_chatbot - (not orphan) and all(map(running, pids))
        groups = {g for g in map(group_of, pids) if g is not None}
        assert os.getpgid(session.pid) not in groups  # each service leads a group of its own
        session.send_signal(sig)
        session.wait(timeout=60)
        wait_for(lambda: not any(map(running, pids)) and not members(groups), 10,
                 "every process of the interrupted session to end")
        if sig == signal.SIGTERM:
            assert session.returncode == pytest.ExitCode.INTERRUPTED
            assert (out / "finalised").exists()  # the services were stopped by their fixture
    finally:  # a failed check leaves nothing running either
        if session.poll() is None:
            session.kill()
            session.wait()
        for pid in members(groups - {os.getpgrp()}):
            os.kill(pid, signal.SIGKILL)
