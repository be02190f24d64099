"""`tinyllm backup` while rag runs -> wipe -> `tinyllm restore` -> the same search results,
the same models, the same chat database; and restore refuses what it must."""

from __future__ import annotations

import io
import os
import sqlite3
import subprocess
import sys
import tarfile
import threading
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
