"""`tinyllm backup` while rag runs -> wipe -> `tinyllm restore` -> the same search results,
the same models, the same chat database; the archive is its owner's only; and restore refuses
what it must (unsafe entries, hostile collection names) before it writes anything."""

from __future__ import annotations

import io
import json
import os
import sqlite3
import subprocess
import sys
import tarfile
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import httpx
import pytest

from tests.utils.procs import ServiceProcess, free_port
from tinyllm.backup import Places, RestoreError, backup, restore
from tinyllm.procs import REPO

pytestmark = pytest.mark.slow
DOCS = {
    "boats.md": "# Boats\n\nThe harbour master counts forty wooden boats every spring. "
                "Each boat is painted blue before the summer festival.\n",
    "bread.txt": "Sourdough bread needs a starter, flour, water and salt. The dough rests "
                 "overnight in a cool kitchen before it is baked in a hot oven.\n",
}
QUERIES = ["how many boats does the harbour master count?", "what does sourdough need?"]


def search(url: str) -> list[list[tuple[str, str, float]]]:
    out = []
    for query in QUERIES:
        reply = httpx.post(url + "/search", json={"query": query, "collections": ["notes"],
                                                  "k": 3}, timeout=60)
        assert reply.status_code == 200, reply.text
        out.append([(h["document"], h["text"], round(h["score"], 5))
                    for h in reply.json()["results"]])
    return out


def tinyllm(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinyllm", *args], cwd=REPO, text=True,
                          capture_output=True, env={**os.environ, **env}, timeout=300)


def test_backup_wipe_restore_same_search_results(tmp_path: Path) -> None:
    rag_data, models = tmp_path / "rag", tmp_path / "models"
    (models / "checkpoints").mkdir(parents=True)
    gguf = os.urandom(200_000)
    (models / "tiny-notes.gguf").write_bytes(gguf)
    (models / "checkpoints" / "tiny-notes.pt").write_bytes(b"big")
    port = free_port()
    env = {"RAG_DATA_DIR": str(rag_data), "QDRANT_URL": "", "RAG_PORT": str(port),
           "LLMSERVER_MODELS_DIR": str(models), "CHATBOT_PORT": str(free_port()),
           "TINYLLM_DATA_DIR": str(tmp_path / "data")}
    archive = tmp_path / "backup.tar.gz"
    rag = ServiceProcess("rag", "RAG_", env=env, port=port, health_timeout=180)
    with rag:
        files = [("files", (name, text.encode())) for name, text in DOCS.items()]
        reply = httpx.post(rag.url + "/collections/notes/documents", files=files, timeout=120)
        assert reply.status_code == 200, reply.text
        before = search(rag.url)
        assert before[0][0][0] == "boats.md" and before[1][0][0] == "bread.txt"
        made = tinyllm("backup", str(archive), env=env)  # while rag runs
        assert made.returncode == 0, made.stderr[-3000:]
        assert "2 model files" not in made.stdout and "1 model files" in made.stdout
        refused = tinyllm("restore", str(archive), env=env)
        assert refused.returncode == 1 and "rag is running" in refused.stderr
    not_empty = tinyllm("restore", str(archive), env=env)
    assert not_empty.returncode == 1 and "not an empty stack" in not_empty.stderr
    for path in sorted(tmp_path.rglob("*"), reverse=True):  # wipe: rag's store and the models
        if path.is_relative_to(rag_data) or path.is_relative_to(models):
            path.unlink() if path.is_file() else path.rmdir()
    restored = tinyllm("restore", str(archive), env=env)
    assert restored.returncode == 0, restored.stderr[-3000:]
    assert (models / "tiny-notes.gguf").read_bytes() == gguf
    assert not (models / "checkpoints").exists(), "checkpoints only with --checkpoints"
    with ServiceProcess("rag", "RAG_", env=env, port=port, health_timeout=180) as again:
        assert search(again.url) == before


def test_chat_database_is_copied_consistently_while_written(tmp_path: Path) -> None:
    db = tmp_path / "chat" / "chatbot.db"
    db.parent.mkdir()
    with sqlite3.connect(db) as conn:
        conn.execute("CREATE TABLE messages (id INTEGER PRIMARY KEY, text TEXT)")
    stop, wrote = threading.Event(), threading.Event()

    def writer() -> None:  # the chatbot, writing conversations in transactions of 10 rows
        conn = sqlite3.connect(db, timeout=30)
        while not stop.is_set():
            with conn:
                conn.executemany("INSERT INTO messages (text) VALUES (?)",
                                 [("hello " * 20,)] * 10)
            wrote.set()
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    assert wrote.wait(30)
    places = Places(models_dir=tmp_path / "none", rag_data=tmp_path / "none",
                    qdrant_url=None, qdrant_api_key=None, chatbot_data=db,
                    rag_url=f"http://127.0.0.1:{free_port()}",
                    chatbot_url=f"http://127.0.0.1:{free_port()}")
    try:
        manifest = backup(tmp_path / "b.tar", places)
    finally:
        stop.set()
        thread.join()
    assert manifest["chatbot"] == ["chatbot.db"]
    rows_now = sqlite3.connect(db).execute("SELECT count(*) FROM messages").fetchone()[0]
    db.unlink()
    restore(tmp_path / "b.tar", places)
    copy = sqlite3.connect(db)
    assert copy.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = copy.execute("SELECT count(*) FROM messages").fetchone()[0]
    assert rows % 10 == 0 and 0 < rows <= rows_now, "whole transactions only"


def test_restore_refuses_unsafe_and_foreign_archives(tmp_path: Path) -> None:
    places = Places(models_dir=tmp_path / "models", rag_data=tmp_path / "rag", qdrant_url=None,
                    qdrant_api_key=None, chatbot_data=None,
                    rag_url=f"http://127.0.0.1:{free_port()}",
                    chatbot_url=f"http://127.0.0.1:{free_port()}")
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        for name, data in (("manifest.json", b'{"format": 1}'),
                           ("models/../../escaped.txt", b"x")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    with pytest.raises(RestoreError, match="unsafe entry"):
        restore(evil, places)
    assert not (tmp_path / "escaped.txt").exists()
    assert not (tmp_path.parent / "escaped.txt").exists()
    foreign = tmp_path / "foreign.tar"
    with tarfile.open(foreign, "w") as tar:
        tar.add(__file__, "something.py")
    with pytest.raises(RestoreError, match="not a TinyLLM backup"):
        restore(foreign, places)


def test_places_find_the_chatbot_database_where_the_chatbot_keeps_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TINYLLM_DATA_DIR", str(tmp_path))
    monkeypatch.delenv("CHATBOT_DATABASE_URL", raising=False)
    from chatbot.config import Settings

    assert Places.from_settings().chatbot_data == tmp_path / "chatbot" / "chatbot.db"
    assert Settings().database() == f"sqlite:///{tmp_path / 'chatbot' / 'chatbot.db'}"
    monkeypatch.setenv("CHATBOT_DATABASE_URL", "postgresql+psycopg://u@127.0.0.1/chat")
    assert Places.from_settings().chatbot_data is None  # PostgreSQL: its own tools


class FakeQdrant:
    """Qdrant's snapshot API as backup and restore use it; every request is noted."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.requests: list[tuple[str, str]] = []
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self.handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def handler(self) -> type[BaseHTTPRequestHandler]:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def answer(self, body: bytes) -> None:
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def any(self) -> None:
                fake.requests.append((self.command, self.path))
                self.rfile.read(int(self.headers.get("Content-Length") or 0))
                parts = self.path.split("?")[0].strip("/").split("/")
                if self.command == "GET" and parts == ["collections"]:
                    found = [{"name": n} for n in fake.names]
                    return self.answer(json.dumps({"result": {"collections": found}}).encode())
                if self.command == "GET" and len(parts) == 4:  # a snapshot's bytes
                    return self.answer(f"snapshot of {parts[1]}".encode())
                result = {"name": "s1.snapshot"} if self.command == "POST" else True
                self.answer(json.dumps({"result": result}).encode())

            do_GET = do_POST = do_DELETE = any

        return Handler


@pytest.fixture
def qdrant() -> Iterator[FakeQdrant]:
    fake = FakeQdrant(["notes", "web-pages_2"])
    thread = threading.Thread(target=fake.server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def places_at(root: Path, qdrant_url: str | None = None,
              chatbot_data: Path | None = None) -> Places:
    """The stack's parts under `root`, no service running."""
    return Places(models_dir=root / "models", rag_data=root / "rag", qdrant_url=qdrant_url,
                  qdrant_api_key=None, chatbot_data=chatbot_data,
                  rag_url=f"http://127.0.0.1:{free_port()}",
                  chatbot_url=f"http://127.0.0.1:{free_port()}")


def test_the_archive_and_every_temp_file_are_the_owners_only(
        tmp_path: Path, qdrant: FakeQdrant, monkeypatch: pytest.MonkeyPatch) -> None:
    source = tmp_path / "stack"
    (source / "models").mkdir(parents=True)
    (source / "models" / "m.gguf").write_bytes(b"GGUF")
    db = source / "chat" / "chatbot.db"
    db.parent.mkdir()
    sqlite3.connect(db).execute("CREATE TABLE t (x)").connection.commit()
    archive = tmp_path / "out" / "backup.tar.gz"
    modes: dict[str, tuple[int, int]] = {}  # entry: (its file's mode, the archive's so far)
    add = tarfile.TarFile.add

    def noting_add(self: tarfile.TarFile, name: str, arcname: str, **kw: object) -> None:
        partial = archive.with_name(f".{archive.name}.tmp")
        modes[arcname] = (os.stat(name).st_mode & 0o777, partial.stat().st_mode & 0o777)
        add(self, name, arcname, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(tarfile.TarFile, "add", noting_add)
    umask = os.umask(0o022)  # the usual default: new files are world-readable
    try:
        manifest = backup(archive, places_at(source, qdrant.url, db))
    finally:
        os.umask(umask)
    assert manifest["rag"] == {"mode": "server", "collections": ["notes", "web-pages_2"]}
    assert os.stat(archive).st_mode & 0o777 == 0o600
    assert modes == {"models/m.gguf": (0o644, 0o600),  # the source file is left as it is
                     "rag/snapshots/notes.snapshot": (0o600, 0o600),
                     "rag/snapshots/web-pages_2.snapshot": (0o600, 0o600),
                     "chatbot/chatbot.db": (0o600, 0o600)}
    assert sorted(p.name for p in archive.parent.iterdir()) == ["backup.tar.gz"]


def hostile_archive(path: Path, snapshot_entry: str) -> None:
    """A model, chat data and a collection snapshot under `snapshot_entry`."""
    with tarfile.open(path, "w") as tar:
        for name, data in (("manifest.json", b'{"format": 1, "chatbot_kind": "file"}'),
                           ("models/m.gguf", b"GGUF"), ("chatbot/chatbot.db", b"db"),
                           ("rag/snapshots/notes.snapshot", b"fine"),
                           (snapshot_entry, b"evil")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))


RULE = "letters, digits, '-', '_' and '.', not starting with '.' and without '..'"


@pytest.mark.parametrize("entry,message", [
    ("rag/snapshots/../../etc.snapshot",
     "unsafe entry in the archive: 'rag/snapshots/../../etc.snapshot'"),
    ("rag/snapshots/a/b.snapshot",
     f"unsafe entry in the archive: 'rag/snapshots/a/b.snapshot' (a collection name is {RULE})"),
    ("rag/snapshots/x?y#z.snapshot",
     f"unsafe entry in the archive: 'rag/snapshots/x?y#z.snapshot' (a collection name is "
     f"{RULE})"),
    ("rag/snapshots/%2e%2e.snapshot",
     f"unsafe entry in the archive: 'rag/snapshots/%2e%2e.snapshot' (a collection name is "
     f"{RULE})"),
    ("rag/snapshots/..snapshot",
     f"unsafe entry in the archive: 'rag/snapshots/..snapshot' (a collection name is {RULE})"),
    ("rag/snapshots/a..b.snapshot",
     f"unsafe entry in the archive: 'rag/snapshots/a..b.snapshot' (a collection name is "
     f"{RULE})"),
    ("rag/snapshots/notes",
     f"unsafe entry in the archive: 'rag/snapshots/notes' (a collection name is {RULE})"),
])
def test_restore_refuses_a_hostile_collection_name_before_writing_anything(
        tmp_path: Path, qdrant: FakeQdrant, entry: str, message: str) -> None:
    evil = tmp_path / "evil.tar"
    hostile_archive(evil, entry)
    stack = tmp_path / "stack"
    with pytest.raises(RestoreError) as err:
        restore(evil, places_at(stack, qdrant.url, stack / "chat" / "chatbot.db"))
    assert str(err.value) == message
    assert not stack.exists()  # no model, no chat database
    assert qdrant.requests == []  # and no collection, not even the good one


def test_restore_uploads_each_snapshot_to_its_collection(
        tmp_path: Path, qdrant: FakeQdrant) -> None:
    archive = tmp_path / "good.tar"
    hostile_archive(archive, "rag/snapshots/web-pages_2.v1.snapshot")
    stack = tmp_path / "stack"
    restore(archive, places_at(stack, qdrant.url, stack / "chat" / "chatbot.db"))
    assert (stack / "models" / "m.gguf").read_bytes() == b"GGUF"
    assert qdrant.requests == [
        ("POST", "/collections/notes/snapshots/upload?priority=snapshot&wait=true"),
        ("POST", "/collections/web-pages_2.v1/snapshots/upload?priority=snapshot&wait=true")]


@pytest.mark.parametrize("name", ["a/b", "x?y#z", "..", ".hidden"])
def test_backup_refuses_a_collection_name_it_could_not_restore(
        tmp_path: Path, qdrant: FakeQdrant, name: str) -> None:
    qdrant.names = ["notes", name]
    archive = tmp_path / "backup.tar"
    with pytest.raises(ValueError) as err:
        backup(archive, places_at(tmp_path / "stack", qdrant.url))
    assert str(err.value) == (f"the Qdrant collection {name!r} cannot be backed up: a name "
                              f"must be {RULE}")
    assert sorted(tmp_path.iterdir()) == []  # no archive, no temp file
    assert ("GET", "/collections") in qdrant.requests
    assert not any(name in path for _, path in qdrant.requests)
