"""`python -m rag` as a real process: SIGKILL mid-ingest and retry, and `tinyllm ingest`."""

from __future__ import annotations

import time

import httpx
import pytest

from rag.ingest_cli import main as ingest_main
from tests.utils.procs import ServiceProcess, children, running, wait_for

from .docs import CORPUS, long_text, make_pdf

pytestmark = pytest.mark.slow


def rag_process(data_dir, log_path, **env: str) -> ServiceProcess:
    # QDRANT_URL empty counts as unset: embedded mode whatever the outer environment says.
    return ServiceProcess("rag", "RAG_", env={"RAG_DATA_DIR": str(data_dir), "QDRANT_URL": "",
                                              "RAG_API_KEY": "", **env},
                          log_path=log_path, health_timeout=180)


def collection_info(url: str, name: str) -> dict:
    return httpx.get(f"{url}/collections/{name}", timeout=30).json()


def test_kill_mid_ingest_then_retry_leaves_exactly_the_chunks(tmp_path):
    data = long_text(260, seed=7).encode()
    env = {"RAG_WRITE_BATCH": "8"}
    with rag_process(tmp_path / "data", tmp_path / "rag.log", **env) as proc:
        response = httpx.post(f"{proc.url}/collections/kill/documents",
                              params={"background": "true"},
                              files={"files": ("big.txt", data)}, timeout=60)
        assert response.status_code == 202, response.text
        job_id = response.json()["job"]["id"]
        deadline = time.monotonic() + 120
        while True:
            job = httpx.get(f"{proc.url}/jobs/{job_id}", timeout=10).json()
            if job["progress"] >= 0.15:
                break
            assert job["status"] in ("queued", "running"), job
            assert time.monotonic() < deadline, job
            time.sleep(0.05)
        assert job["status"] == "running" and job["progress"] < 1, job
        written = collection_info(proc.url, "kill")["points"]
        encoders = children(proc.pid)
        assert encoders, "the ingest encoder runs in a child process"
        proc.kill()
    assert written > 0
    # The encoder child ends with rag, even when rag is killed: no orphan keeps its model.
    wait_for(lambda: not any(map(running, encoders)), 10, "the orphaned encoder to exit")
    with rag_process(tmp_path / "data", tmp_path / "rag.log", **env) as proc:
        after_restart = collection_info(proc.url, "kill")
        # Startup removed the crashed ingest's points; the document never became visible.
        assert after_restart["points"] == 0 and after_restart["documents"] == 0
        response = httpx.post(f"{proc.url}/collections/kill/documents",
                              files={"files": ("big.txt", data)}, timeout=300)
        assert response.status_code == 200, response.text
        chunks = response.json()["documents"][0]["chunks"]
        assert chunks > written
        final = collection_info(proc.url, "kill")
        assert final["points"] == chunks and final["documents"] == 1
        again = httpx.post(f"{proc.url}/collections/kill/documents",
                           files={"files": ("big.txt", data)}, timeout=300)
        assert again.json()["documents"][0]["status"] == "unchanged"
        assert collection_info(proc.url, "kill")["points"] == chunks


def test_ingest_cli_uploads_with_progress(tmp_path, capsys):
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "tides.txt").write_text(CORPUS["tides.txt"])
    (folder / "chess.html").write_text(CORPUS["chess.html"])
    (folder / "sub").mkdir()
    (folder / "sub" / "book.pdf").write_bytes(make_pdf(["Owls hunt at night.", "Page two."]))
    (folder / "ignored.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    bad = tmp_path / "binary.txt"
    bad.write_bytes(b"\x00\x01binary")
    with rag_process(tmp_path / "data", tmp_path / "rag.log", RAG_API_KEY="k3y") as proc:
        args = [str(folder), "--collection", "cli", "--url", proc.url, "--api-key", "k3y",
                "--poll", "0.05"]
        assert ingest_main(args) == 0
        out = capsys.readouterr()
        assert out.out.count("added") == 3 and "3 of 3 files" in out.out
        assert "cli" in out.err and "%" in out.err  # the progress bar
        listed = httpx.get(f"{proc.url}/collections/cli/documents", timeout=10,
                           headers={"Authorization": "Bearer k3y"}).json()["data"]
        assert sorted(d["name"] for d in listed) == ["book.pdf", "chess.html", "tides.txt"]
        assert ingest_main(args) == 0
        assert capsys.readouterr().out.count("unchanged") == 3
        assert ingest_main([str(bad), "--collection", "cli", "--url", proc.url,
                            "--api-key", "k3y"]) == 1
        assert "unsupported_media_type" in capsys.readouterr().err
        assert ingest_main([str(bad), "--collection", "cli", "--url", proc.url]) == 1
        assert "missing_api_key" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exc:
        ingest_main([str(tmp_path / "missing.txt"), "--collection", "cli"])
    assert exc.value.code == 2
