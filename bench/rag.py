"""rag: retrieval quality per mode, ingest against bare encode, search latency, search under load.

- Quality: recall@1, recall@3 and MRR of dense, sparse and hybrid search on the labelled
  set over Debian's git-doc pages (tests/rag/gitdocs.py), through the service's API.
- Ingest: the same real HTML pages go through `python -m rag` over HTTP (sandboxed
  extraction, chunking, embedding, writing to embedded Qdrant) and through a bare
  `SentenceTransformer.encode` of the very texts the service embeds, alternating rounds.
- Search: the service's store (`Store.search`) on embedded Qdrant at growing sizes,
  unfiltered (the fast path embedded mode takes when nothing is being written) and with the
  `complete` filter (the path taken during any ingest, and always on a Qdrant server).
- Under load: /search latency of a real process, idle and during three concurrent ingests.
"""

from __future__ import annotations

import logging
import os
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import numpy as np

from tinyllm.procs import ServiceProcess

log = logging.getLogger("bench.rag")
PAUSE_S = 1.0


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def rag_process(tmp: str, **env: str) -> ServiceProcess:
    return ServiceProcess("rag", "RAG_", env={"RAG_DATA_DIR": tmp, "QDRANT_URL": "",
                                              "RAG_API_KEY": "", **env},
                          log_path=Path(tmp) / "rag.log", health_timeout=180)


def bench_quality(embedder: Any) -> dict[str, dict[str, float]]:
    from fastapi.testclient import TestClient

    from rag.config import Settings
    from rag.main import create_app
    from tests.rag import gitdocs

    with tempfile.TemporaryDirectory() as tmp, TestClient(create_app(Settings(
            data_dir=Path(tmp), qdrant_url=None, api_key=None, ingest_nice=0), embedder)) as c:
        while c.get("/health").status_code != 200:
            time.sleep(0.1)
        c.post("/collections/git/documents",
               files=[("files", d) for d in gitdocs.load()]).raise_for_status()

        def search(query: str, mode: str, k: int) -> list[dict]:
            return c.post("/search", json={"query": query, "collection": "git", "k": k,
                                           "mode": mode}).json()["results"]

        result = gitdocs.evaluate(search)
        log.info("quality (%s): %s", embedder.backend, result)
        return result


def bench_ingest(rounds: int, docs: list[tuple[str, bytes]], raw: Any, onnx_file: Path
                 ) -> dict[str, Any]:
    """Chunks/s of the service (torch, onnx) and of bare encode of the same texts, in turn."""
    from rag.config import Settings
    from rag.ingest import Ingestor, limits_of
    from services.extract import extract

    settings = Settings()
    ingestor = Ingestor.__new__(Ingestor)  # only its chunking: no store, no executor
    ingestor.settings, ingestor.embedder = settings, raw
    ingestor.chunk_tokens = min(settings.chunk_tokens, raw.max_chunk_tokens - 32)
    texts: list[str] = []
    for name, data in docs:
        doc = ingestor.chunk(name, data, extract(data, name, limits_of(settings)))
        texts += [ingestor.context(doc, c.index) + "\n" + c.text for c in doc.chunks]
    raw.encode(texts[:64])
    result: dict[str, Any] = {"service": [], "raw": [], "onnx": [], "chunks": len(texts),
                              "bytes": sum(len(d) for _, d in docs),
                              "chunk_tokens": ingestor.chunk_tokens}
    # Normal priority for the race: the default nice only matters when searches compete.
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as tmp2, \
            rag_process(tmp, RAG_INGEST_NICE="0") as proc, \
            rag_process(tmp2, RAG_INGEST_NICE="0", RAG_EMBEDDING_BACKEND="onnx",
                        RAG_EMBEDDING_ONNX_FILE=str(onnx_file)) as onnx_proc, \
            httpx.Client(timeout=1200) as client:
        urls = {"service": proc.url, "onnx": onnx_proc.url}
        for url in urls.values():
            client.post(f"{url}/collections/warmup/documents",
                        files={"files": ("w.html", docs[0][1])}).raise_for_status()
        sides = ["raw", "service", "onnx"]
        for r in range(rounds):
            for side in sides[r % 3:] + sides[:r % 3]:  # rotate who goes first
                time.sleep(PAUSE_S)
                start = time.perf_counter()
                if side == "raw":
                    raw.encode(texts)
                else:
                    reply = client.post(f"{urls[side]}/collections/ingest{r}/documents",
                                        files=[("files", d) for d in docs])
                    reply.raise_for_status()
                    got = sum(d["chunks"] for d in reply.json()["documents"])
                    assert got == len(texts), (got, len(texts))
                result[side].append(len(texts) / (time.perf_counter() - start))
            log.info("round %d: raw %.1f, service %.1f, onnx %.1f chunks/s", r,
                     result["raw"][-1], result["service"][-1], result["onnx"][-1])
    return result


def bench_search(sizes: list[int], queries: int) -> dict[int, dict[str, float]]:
    """p50/p99 of Store.search, dense and hybrid, with and without the `complete` filter."""
    from rag.config import Settings
    from rag.store import PointBatch, Store

    rng = np.random.default_rng(0)
    centers = rng.standard_normal((200, 384)).astype(np.float32)
    out: dict[int, dict[str, float]] = {}
    filler = "river mountain engine protocol harvest library signal orbit " * 20
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Settings(data_dir=Path(tmp), qdrant_url=None))
        store.create("bench", "all-MiniLM-L6-v2", 384)
        n = 0
        for size in sizes:
            start = time.perf_counter()
            while n < size:
                k = min(1000, size - n)
                vectors = centers[rng.integers(0, 200, k)] + \
                    0.5 * rng.standard_normal((k, 384)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                terms = [(sorted({int(t) for t in rng.integers(0, 5000, 40)}), [1.0] * 0)
                         for _ in range(k)]
                terms = [(t, [1.0] * len(t)) for t, _ in terms]
                payloads = [{"doc_id": f"d{(n + i) // 100}", "document": f"doc{(n + i) // 100}",
                             "chunk_index": (n + i) % 100, "complete": True, "page": None,
                             "start": 0, "end": len(filler), "text": filler} for i in range(k)]
                store.upsert("bench", PointBatch([str(uuid.uuid4()) for _ in range(k)],
                                                 vectors, terms, payloads))
                n += k
            fill_s = time.perf_counter() - start
            qs = rng.standard_normal((queries, 384)).astype(np.float32)
            row: dict[str, float] = {"fill_s": fill_s}
            for mode in ("dense", "hybrid"):
                for strict in (False, True):
                    times = []
                    store._writing["bench"] = int(strict)  # the filter an ingest switches on
                    for q in qs:
                        sparse = (sorted({int(t) for t in rng.integers(0, 5000, 4)}), [1.0] * 4)
                        t = time.perf_counter()
                        store.search("bench", q.tolist(), sparse if mode == "hybrid" else None,
                                     5, [])
                        times.append((time.perf_counter() - t) * 1000)
                    key = f"{mode}{'_filtered' if strict else ''}"
                    row[key + "_p50"], row[key + "_p99"] = pct(times, 50), pct(times, 99)
            store._writing["bench"] = 0
            out[size] = row
            log.info("search at %d: %s", size, {k: round(v, 1) for k, v in row.items()})
        store.close()
    return out


def bench_under_load(docs: list[tuple[str, bytes]], queries: int) -> dict[str, list[float]]:
    """/search latency of a real process, idle and during three concurrent ingests."""
    out: dict[str, list[float]] = {"idle": [], "busy": []}
    with tempfile.TemporaryDirectory() as tmp, rag_process(tmp) as proc, \
            httpx.Client(base_url=proc.url, timeout=60) as client:
        client.post("/collections/docs/documents",
                    files=[("files", d) for d in docs[:3]]).raise_for_status()
        body = {"query": "how do I undo a commit", "collection": "docs", "k": 5}

        def measure(key: str) -> None:
            for _ in range(queries):
                t = time.perf_counter()
                client.post("/search", json=body).raise_for_status()
                out[key].append((time.perf_counter() - t) * 1000)
                time.sleep(0.02)

        measure("idle")
        jobs = [client.post(f"/collections/load{i}/documents", params={"background": "true"},
                            files=[("files", d) for d in docs]).json()["job"]["id"]
                for i in range(3)]
        time.sleep(1)
        measure("busy")
        states = [client.get(f"/jobs/{j}").json()["status"] for j in jobs]
        out["running_after"] = [float(s == "running") for s in states]
    return out


def plot(out_dir: Path, quality: dict, ingest: dict, search: dict, load: dict) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 4, figsize=(20, 4))
    modes = list(quality)
    for i, metric in enumerate(("recall@1", "recall@3", "mrr")):
        axes[0].bar([x + i * 0.27 for x in range(len(modes))],
                    [quality[m][metric] for m in modes], 0.27, label=metric)
    axes[0].set_xticks([x + 0.27 for x in range(len(modes))], modes)
    axes[0].set_ylim(0, 1)
    axes[0].set_title("Retrieval on git-doc, torch embedder")
    axes[0].legend()
    axes[1].bar(["bare encode", "service torch", "service onnx"],
                [statistics.median(ingest[k]) for k in ("raw", "service", "onnx")],
                color=["#888", "#2a7", "#27a"])
    axes[1].set_ylabel("chunks / s (median)")
    axes[1].set_title("Ingest, real HTML, same texts")
    sizes = sorted(search)
    for key, style in (("dense_p99", "o-"), ("dense_filtered_p99", "o--"),
                       ("hybrid_p99", "s-"), ("hybrid_filtered_p99", "s--")):
        axes[2].plot(sizes, [search[s][key] for s in sizes], style, label=key)
    axes[2].set_xscale("log")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("chunks")
    axes[2].set_ylabel("ms per search (p99)")
    axes[2].set_title("Embedded store search")
    axes[2].legend(fontsize=7)
    axes[3].boxplot([load["idle"], load["busy"]])
    axes[3].set_xticks([1, 2], ["idle", "3 ingests"])
    axes[3].set_ylabel("ms per /search")
    axes[3].set_title("Search during ingests")
    fig.tight_layout()
    name = "rag.png"
    fig.savefig(out_dir / name, dpi=100)
    plt.close(fig)
    return name


def run(out_dir: Path, quick: bool = False) -> str:
    """Run every comparison; write the plot; return the markdown section."""
    from rag.embedder import Embedder
    from rag.onnx_backend import export
    from tests.rag import gitdocs

    embedder = Embedder()
    onnx_dir = Path(tempfile.mkdtemp(prefix="rag-onnx-"))
    onnx_file = export(embedder.path, onnx_dir)  # once, offline, from the packaged model
    quality = bench_quality(embedder)
    onnx_quality = bench_quality(Embedder(backend="onnx", onnx_file=onnx_file))
    all_docs = gitdocs.load()
    docs = all_docs[:6] if quick else all_docs[:30]
    ingest = bench_ingest(3 if quick else 6, docs, embedder, onnx_file)
    sizes = [1000, 10000] if quick else [1000, 10000, 100000]
    if os.environ.get("RAG_BENCH_100K") and 100000 not in sizes:
        sizes.append(100000)
    search = bench_search(sizes, 20 if quick else 200)
    log.info("under load")
    load = bench_under_load(docs[:6], 30 if quick else 100)
    try:
        image = plot(out_dir, quality, ingest, search, load)
    except Exception:  # the tables matter more than the picture
        log.exception("plot failed")
        image = "rag.png"
    raw, svc = statistics.median(ingest["raw"]), statistics.median(ingest["service"])
    onnx = statistics.median(ingest["onnx"])
    ratios = [s / r for s, r in zip(ingest["service"], ingest["raw"], strict=True)]
    onnx_ratios = [s / r for s, r in zip(ingest["onnx"], ingest["raw"], strict=True)]
    chunks, mb = ingest["chunks"], ingest["bytes"] / 1e6
    lines = [
        "## rag", "",
        f"Retrieval quality: {len(gitdocs.QUESTIONS)} questions in a user's words over "
        f"{len(gitdocs.DOCUMENTS)} pages of Debian's `git-doc` (HTML), each with the one "
        "page that answers it; ranks are over distinct documents.", "",
        "| mode | recall@1 | recall@3 | MRR |", "|---|---:|---:|---:|",
    ]
    lines += [f"| {m} | {q['recall@1']:.3f} | {q['recall@3']:.3f} | {q['mrr']:.3f} |"
              for m, q in quality.items()]
    lines += [f"| {m}, ONNX int8 embedder | {q['recall@1']:.3f} | {q['recall@3']:.3f} | "
              f"{q['mrr']:.3f} |" for m, q in onnx_quality.items()]
    lines += [
        "", f"Ingest: {len(docs)} git-doc HTML pages, {mb:.2f} MB, {chunks} chunks of up to "
        f"{ingest['chunk_tokens']} tokens plus a title/section line, uploaded in one request "
        "to `python -m rag` (embedded Qdrant, ingest at normal priority) against "
        "`SentenceTransformer.encode` of the same texts in this process; "
        f"{len(ingest['raw'])} rounds (order rotating), ratios paired within a round.", "",
        "| path | chunks/s (median) | MB/s | ratio to bare (min / median / max) |",
        "|---|---:|---:|---:|",
        f"| bare sentence-transformers encode | {raw:.1f} | {mb / (chunks / raw):.3f} | 1.00 |",
        f"| rag service (HTTP, extract, chunk, embed, dense+sparse write) | {svc:.1f} | "
        f"{mb / (chunks / svc):.3f} | {min(ratios):.2f} / {statistics.median(ratios):.2f} / "
        f"{max(ratios):.2f} |",
        f"| rag service, `RAG_EMBEDDING_BACKEND=onnx` (int8) | {onnx:.1f} | "
        f"{mb / (chunks / onnx):.3f} | {min(onnx_ratios):.2f} / "
        f"{statistics.median(onnx_ratios):.2f} / {max(onnx_ratios):.2f} |", "",
        "Search: `Store.search` on embedded Qdrant (qdrant-client `path=` mode, exact scan), "
        "k=5, payload returned, clustered synthetic vectors and random sparse terms; "
        "*filtered* adds the `complete == true` filter that embedded mode applies while an "
        "ingest is writing (and a Qdrant server always applies).", "",
        "| chunks | dense p50 / p99 ms | dense filtered p50 / p99 | hybrid p50 / p99 | "
        "hybrid filtered p50 / p99 | fill s |", "|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        s = search[size]
        lines.append(
            f"| {size:,} | {s['dense_p50']:.1f} / {s['dense_p99']:.1f} | "
            f"{s['dense_filtered_p50']:.1f} / {s['dense_filtered_p99']:.1f} | "
            f"{s['hybrid_p50']:.1f} / {s['hybrid_p99']:.1f} | "
            f"{s['hybrid_filtered_p50']:.1f} / {s['hybrid_filtered_p99']:.1f} | "
            f"{s['fill_s']:.0f} |")
    busy_running = sum(load["running_after"])
    lines += [
        "", "Search during ingests: `/search` (hybrid) against a real process, idle and while "
        f"three background ingests of {len(docs[:6])} pages each run (default ingest nice 10; "
        f"{busy_running:.0f} of 3 still running at the end of the measurement).", "",
        "| | p50 ms | p99 ms |", "|---|---:|---:|",
        f"| idle | {pct(load['idle'], 50):.1f} | {pct(load['idle'], 99):.1f} |",
        f"| during 3 ingests | {pct(load['busy'], 50):.1f} | {pct(load['busy'], 99):.1f} |",
        "", f"![rag benchmark](benchmarks/{image})",
    ]
    return "\n".join(lines)
