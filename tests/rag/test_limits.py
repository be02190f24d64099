"""Hostile documents and load against a real `python -m rag` with its default limits.

Peak memory and time are measured, not assumed: a sampler reads the resident memory of the
rag process and of its extraction children from /proc while the bombs are uploaded.
"""

from __future__ import annotations

import os
import socket
import statistics
import threading
import time
from pathlib import Path

import httpx
import pytest

from rag.jobs import Jobs
from services.errors import APIError
from tests.utils.procs import ServiceProcess

from .docs import docx_paragraph_flood, html_tag_flood, long_text, pdf_bomb

pytestmark = pytest.mark.slow
MB = 1 << 20


def rss(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


def descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        for task in Path(f"/proc/{p}/task").glob("*"):
            try:
                kids = [int(c) for c in (task / "children").read_text().split()]
            except OSError:
                continue
            out += kids
            todo += kids
    return out


class Sampler:
    """Peak RSS of a process and, separately, of the largest of its descendants."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.main = rss(pid)
        self.child = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.main = max(self.main, rss(self.pid))
            self.child = max([self.child] + [rss(c) for c in descendants(self.pid)])
            time.sleep(0.02)

    def __enter__(self) -> Sampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def rag_process(tmp_path: Path, **env: str) -> ServiceProcess:
    tmp = tmp_path / "tmp"
    tmp.mkdir(exist_ok=True)
    return ServiceProcess("rag", "RAG_", env={"RAG_DATA_DIR": str(tmp_path / "data"),
                                              "QDRANT_URL": "", "RAG_API_KEY": "",
                                              "TMPDIR": str(tmp), **env},
                          log_path=tmp_path / "rag.log", health_timeout=180)


def post(url: str, name: str, data: bytes, **params: str) -> httpx.Response:
    return httpx.post(f"{url}/collections/bombs/documents", params=params,
                      files={"files": (name, data)}, timeout=300)


def test_bombs_under_the_default_caps_are_bounded(tmp_path):
    bombs = [
        # The file: 214 KB, 25 million empty paragraphs, 150 MB of XML.
        ("flood.docx", docx_paragraph_flood(25_000_000), 413, "decompression_bomb"),
        # Just under the DOCX cap: read as a stream, nothing kept.
        ("under-cap.docx", docx_paragraph_flood(1_600_000), 422, "no_text"),
        # 40 MB of tags (under the 50 MB upload cap): no tree is built.
        ("tags.html", html_tag_flood(5_700_000), 422, "no_text"),
        ("bomb.pdf", pdf_bomb(400_000_000), 413, "decompression_bomb"),
    ]
    assert len(bombs[0][1]) < 250_000
    with rag_process(tmp_path) as proc:
        assert proc.proc is not None
        httpx.post(f"{proc.url}/collections/bombs/documents",
                   files={"files": ("warm.txt", b"warm up the extraction server")}, timeout=120)
        before = rss(proc.proc.pid)
        with Sampler(proc.proc.pid) as sampler:
            for name, data, status, code in bombs:
                start = time.monotonic()
                response = post(proc.url, name, data)
                elapsed = time.monotonic() - start
                assert response.status_code == status, (name, response.text)
                assert response.json()["error"]["code"] == code, response.text
                assert elapsed < 150, (name, elapsed)  # bounded, on a busy shared machine
        health = httpx.get(f"{proc.url}/health", timeout=10)
        assert health.status_code == 200
        docs = httpx.get(f"{proc.url}/collections/bombs/documents", timeout=10).json()["data"]
        assert [d["name"] for d in docs] == ["warm.txt"]
    # The service holds at most the upload and the text; parsers run in a capped child.
    assert sampler.main - before < 400 * MB, (before, sampler.main)
    assert 0 < sampler.child < 1024 * MB, sampler.child


def read_reply(sock: socket.socket) -> str:
    """The whole reply: the server may send its head and its body in separate packets."""
    data = b""
    while chunk := sock.recv(65536):
        data += chunk
        head, sep, body = data.partition(b"\r\n\r\n")
        length = next((int(line.split(b":", 1)[1]) for line in head.split(b"\r\n")
                       if line.lower().startswith(b"content-length:")), None)
        if sep and length is not None and len(body) >= length:
            break
    return data.decode(errors="replace")


def test_huge_content_length_is_413_before_the_body(tmp_path):
    with rag_process(tmp_path) as proc:
        spool = tmp_path / "tmp"
        before = sorted(os.listdir(spool))
        head = (f"POST /collections/big/documents HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Content-Type: multipart/form-data; boundary=x\r\n"
                f"Content-Length: {10 ** 12}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", proc.port), timeout=10) as sock:
            sock.sendall(head)  # and not one byte of the body
            start = time.monotonic()
            reply = read_reply(sock)
            assert time.monotonic() - start < 10
        assert reply.startswith("HTTP/1.1 413"), reply
        assert "payload_too_large" in reply
        assert sorted(os.listdir(spool)) == before  # nothing spooled
        assert httpx.get(f"{proc.url}/collections/big", timeout=10).status_code == 404


def test_at_most_max_jobs_ingests_and_search_stays_fast(tmp_path):
    data = [long_text(500, seed=s).encode() for s in range(4)]
    with rag_process(tmp_path, RAG_MAX_JOBS="3") as proc:
        url = proc.url
        assert httpx.post(f"{url}/collections/docs/documents", timeout=120,
                          files={"files": ("seed.txt", long_text(20).encode())}
                          ).status_code == 200
        body = {"query": "copper lantern harbor", "collection": "docs", "k": 5}

        def search_ms(n: int) -> list[float]:
            out = []
            with httpx.Client(timeout=30) as client:
                for _ in range(n):
                    start = time.perf_counter()
                    assert client.post(f"{url}/search", json=body).status_code == 200
                    out.append((time.perf_counter() - start) * 1000)
                    time.sleep(0.02)
            return out

        search_ms(10)
        idle = search_ms(100)
        jobs = []
        for i in range(3):
            response = httpx.post(f"{url}/collections/load{i}/documents", timeout=60,
                                  params={"background": "true"},
                                  files={"files": (f"big{i}.txt", data[i])})
            assert response.status_code == 202, response.text
            jobs.append(response.json()["job"]["id"])
        refused = httpx.post(f"{url}/collections/load3/documents", timeout=60,
                             files={"files": ("big3.txt", data[3])})
        assert refused.status_code == 429, refused.text
        assert refused.headers["retry-after"] == "5"
        assert refused.json()["error"]["code"] == "too_many_ingests"
        time.sleep(1)
        busy = search_ms(100)
        health = httpx.get(f"{url}/health", timeout=5)
        states = [httpx.get(f"{url}/jobs/{j}", timeout=10).json() for j in jobs]
        assert health.status_code == 200
        # The searches really ran while all three ingests were still going.
        assert all(s["status"] == "running" for s in states), states
        # The target is p99 within 2x of idle. The ingests embed in a niced child process
        # and the store's searches never wait for ingest writes, so it holds; on a shared
        # 2-core machine one scheduler hiccup in 100 searches is itself the p99, so p99 gets
        # a 25 ms allowance on top, and p90 and the median are held to 2x as they are.
        cuts = {name: statistics.quantiles(v, n=100, method="inclusive")
                for name, v in (("idle", idle), ("busy", busy))}
        assert cuts["busy"][89] <= 2 * cuts["idle"][89], cuts
        assert cuts["busy"][49] <= 2 * cuts["idle"][49], cuts
        assert cuts["busy"][98] <= 2 * cuts["idle"][98] + 25, cuts
        deadline = time.monotonic() + 600
        for job_id in jobs:
            while (job := httpx.get(f"{url}/jobs/{job_id}", timeout=10).json())["status"] \
                    == "running":
                assert time.monotonic() < deadline, job
                time.sleep(0.5)
            assert job["status"] == "done", job


def test_a_running_job_is_never_evicted():
    jobs = Jobs(max_running=2, kept=1)
    running = jobs.admit()
    running.status = "running"
    for _ in range(5):
        job = jobs.admit()
        job.status = "done"
        jobs.release()
    assert jobs.get(running.id) is running
    assert jobs.get(job.id) is job  # the newest finished one is kept
    assert len(jobs._jobs) == 2
    jobs.admit()
    with pytest.raises(APIError) as exc:
        jobs.admit()
    assert exc.value.status == 429 and exc.value.headers["Retry-After"]
