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
WARM_UP = 10  # searches before the timed ones, per engine and size
LOCAL_MAX = int(os.environ.get("RAG_BENCH_LOCAL_MAX", "10000"))


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
            data_dir=Path(tmp), qdrant_url=None, api_key=None, ingest_nice=0), embedder),
            base_url="http://127.0.0.1") as c:  # a loopback Host: rag's allowed names
        deadline = time.monotonic() + 300
        while c.get("/health").status_code != 200:
            if time.monotonic() > deadline:
                raise RuntimeError(f"rag did not get healthy: {c.get('/health').text}")
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
        for url in urls.values():  # made untimed: a collection is made once, then filled
            for r in range(rounds):
                client.post(f"{url}/collections", json={"name": f"ingest{r}"}).raise_for_status()
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


def bench_search(sizes: list[int], queries: int, engines: tuple[str, ...] = ("local", "edge")
                 ) -> dict[str, dict[int, dict[str, float]]]:
    """p50/p99 of Store.search per embedded engine, dense and hybrid, with and without the
    `complete` filter; for edge also the recall@10 of its HNSW index against exact search.

    Local mode stops at LOCAL_MAX chunks: its fill and each of its searches grow linearly
    (measured at 10k on a busy 2-core machine: 153 s to fill, 0.4-1.3 s a search), so 100k
    would take most of an hour.
    """
    from rag.config import Settings
    from rag.store import PointBatch, Store

    out: dict[str, dict[int, dict[str, float]]] = {}
    filler = "river mountain engine protocol harvest library signal orbit " * 20
    for engine in engines:
        rng = np.random.default_rng(0)
        centers = rng.standard_normal((200, 384)).astype(np.float32)

        def clustered(k: int, rng: np.random.Generator = rng,
                      centers: np.ndarray = centers) -> np.ndarray:
            v = centers[rng.integers(0, 200, k)] + \
                0.5 * rng.standard_normal((k, 384)).astype(np.float32)
            return v / np.linalg.norm(v, axis=1, keepdims=True)

        out[engine] = {}
        with tempfile.TemporaryDirectory() as tmp:
            store = Store(Settings(data_dir=Path(tmp), qdrant_url=None, embedded_engine=engine))
            store.create("bench", "all-MiniLM-L6-v2", 384)
            n = 0
            for size in sizes:
                if engine == "local" and size > LOCAL_MAX:
                    break
                start = time.perf_counter()
                while n < size:
                    k = min(1000, size - n)
                    vectors = clustered(k)
                    terms = [sorted({int(t) for t in rng.integers(0, 5000, 40)})
                             for _ in range(k)]
                    payloads = [{"doc_id": f"d{(n + i) // 100}", "document": f"doc{(n + i) // 100}",
                                 "chunk_index": (n + i) % 100, "complete": True, "page": None,
                                 "start": 0, "end": len(filler), "text": filler}
                                for i in range(k)]
                    store.upsert("bench", PointBatch([str(uuid.uuid4()) for _ in range(k)],
                                                     vectors, [(t, [1.0] * len(t)) for t in terms],
                                                     payloads))
                    n += k
                row: dict[str, float] = {"fill_s": time.perf_counter() - start}
                if engine == "edge":  # the index is built in a child process: wait for it
                    start = time.perf_counter()
                    while store.client.indexing("bench"):
                        time.sleep(0.5)
                    row["index_s"] = time.perf_counter() - start
                count = queries if engine == "edge" else max(20, queries // 15)
                qs = clustered(count)  # queries near the documents, as real ones are
                for q in clustered(WARM_UP):  # fault the index's pages in first: not counted
                    store.search("bench", q.tolist(), ([1], [1.0]), 5, [])
                for mode in ("dense", "hybrid"):
                    for strict in (False, True):
                        times = []
                        store.force_filter = strict
                        for q in qs:
                            terms = sorted({int(t) for t in rng.integers(0, 5000, 4)})
                            sparse = (terms, [1.0] * len(terms))
                            t = time.perf_counter()
                            if engine == "edge" and not strict:  # the unfiltered path
                                store.client.query_points(
                                    "bench", query=q.tolist(), using="dense", limit=5) \
                                    if mode == "dense" else store.client.query_points(
                                        "bench", prefetch=_prefetch(q, sparse),
                                        query=_rrf(), limit=5)
                            else:
                                store.search("bench", q.tolist(),
                                             sparse if mode == "hybrid" else None, 5, [])
                            times.append((time.perf_counter() - t) * 1000)
                        key = f"{mode}{'_filtered' if strict else ''}"
                        row[key + "_p50"], row[key + "_p99"] = pct(times, 50), pct(times, 99)
                        row[key + "_max"] = max(times)
                store.force_filter = False
                row["queries"] = count
                if engine == "edge":
                    hits = []
                    for q in qs[:100]:
                        got = store.client.query_points("bench", query=q.tolist(), using="dense",
                                                        limit=10).points
                        exact = store.client.query_points("bench", query=q.tolist(),
                                                          using="dense", limit=10,
                                                          exact=True).points
                        hits.append(len({p.id for p in got} & {p.id for p in exact}) / 10)
                    row["recall"] = float(np.mean(hits))
                out[engine][size] = row
                log.info("%s search at %d: %s", engine, size,
                         {k: round(v, 3) for k, v in row.items()})
            store.close()
    return out


def _prefetch(q: np.ndarray, sparse: tuple[list[int], list[float]]) -> list[Any]:
    from qdrant_client.http import models as qm

    return [qm.Prefetch(query=q.tolist(), using="dense", limit=20),
            qm.Prefetch(query=qm.SparseVector(indices=sparse[0], values=sparse[1]),
                        using="sparse", limit=20)]


def _rrf() -> Any:
    from qdrant_client.http import models as qm

    return qm.FusionQuery(fusion=qm.Fusion.RRF)


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
    for engine, color in (("local", "#a52"), ("edge", "#27a")):
        rows = search.get(engine, {})
        sizes = sorted(rows)
        for key, style in (("dense_p99", "o-"), ("hybrid_p99", "s-"),
                           ("hybrid_filtered_p99", "s--")):
            axes[2].plot(sizes, [rows[n][key] for n in sizes], style, color=color,
                         label=f"{engine} {key}", alpha=0.6 if key == "dense_p99" else 1)
    axes[2].axhline(20, color="#888", lw=0.8, ls=":")
    axes[2].axhline(40, color="#888", lw=0.8, ls=":")
    axes[2].set_xscale("log")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("chunks")
    axes[2].set_ylabel("ms per search (p99)")
    axes[2].set_title("Embedded store search: local vs edge")
    axes[2].legend(fontsize=6)
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
    search = bench_search(sizes, 300 if quick else 1000)
    log.info("under load")
    load = bench_under_load(docs[:6], 300)
    return report(out_dir, quality, onnx_quality, ingest, search, load, docs, sizes)


def report(out_dir: Path, quality: dict, onnx_quality: dict, ingest: dict, search: dict,
           load: dict, docs: list[tuple[str, bytes]], sizes: list[int]) -> str:
    """The plot and the markdown section of one run's results."""
    from rag.config import Settings
    from tests.rag import gitdocs

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
        "to `python -m rag` (embedded Qdrant, ingest at normal priority; each round's "
        "collection made beforehand, untimed) against "
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
        "Search: the store on each embedded engine, k=5, payload returned, clustered "
        "synthetic vectors (200 centres) with queries drawn near them, random sparse terms. "
        "*local* is qdrant-client's local mode (exact scan in Python); *edge* is qdrant-edge "
        "(`RAG_EMBEDDED_ENGINE=edge`, the default) after its HNSW index is built by the child "
        "process (*index s*: the wait for it after the fill). *filtered* adds the "
        "`complete == 1` filter (local mode applies it only while an ingest writes; edge and a "
        "server always do). *recall* is edge's HNSW top-10 against its exact search "
        f"(`hnsw_ef` 128). p99 over the query count shown, after {WARM_UP} untimed searches "
        "that fault the index in; max in the last column.", "",
        "| engine | chunks | queries | dense p50 / p99 ms | hybrid p50 / p99 | dense filtered "
        "p50 / p99 | hybrid filtered p50 / p99 | recall@10 | fill s | index s | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for engine, rows in search.items():
        for size, r in sorted(rows.items()):
            worst = max(r[k] for k in r if k.endswith("_max"))
            lines.append(
                f"| {engine} | {size:,} | {r['queries']:.0f} | {r['dense_p50']:.1f} / "
                f"{r['dense_p99']:.1f} | {r['hybrid_p50']:.1f} / {r['hybrid_p99']:.1f} | "
                f"{r['dense_filtered_p50']:.1f} / {r['dense_filtered_p99']:.1f} | "
                f"{r['hybrid_filtered_p50']:.1f} / {r['hybrid_filtered_p99']:.1f} | "
                f"{format(r['recall'], '.3f') if 'recall' in r else '–'} | {r['fill_s']:.0f} | "
                f"{r.get('index_s', 0):.0f} | {worst:.0f} |")
    if "edge" in search and "local" in search:
        top = max(set(search["edge"]) & set(search["local"]))
        e, lo = search["edge"][top], search["local"][top]
        lines += ["", f"At {top:,} chunks edge answers hybrid searches "
                      f"{lo['hybrid_p99'] / e['hybrid_p99']:.0f}x faster at p99 than local "
                      f"mode ({e['hybrid_p99']:.1f} vs {lo['hybrid_p99']:.1f} ms), "
                      f"{lo['hybrid_filtered_p99'] / e['hybrid_filtered_p99']:.0f}x filtered "
                      f"({e['hybrid_filtered_p99']:.1f} vs {lo['hybrid_filtered_p99']:.1f} ms)."]
    busy_running = sum(load["running_after"])
    lines += [
        "", "Search during ingests: `/search` (hybrid) against a real process, idle and while "
        f"three background ingests of {len(docs[:6])} pages each run (defaults: edge store, "
        f"ingest batches embedded in a child process at nice {Settings().ingest_nice}; "
        f"{busy_running:.0f} of 3 still running at the end of the measurement), "
        f"{len(load['idle'])} searches each.", "",
        "| | p50 ms | p90 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {label} | {pct(load[key], 50):.1f} | {pct(load[key], 90):.1f} | "
              f"{pct(load[key], 99):.1f} | {max(load[key]):.1f} |"
              for label, key in (("idle", "idle"), ("during 3 ingests", "busy"))]
    lines += [
        f"| ratio busy / idle | {pct(load['busy'], 50) / pct(load['idle'], 50):.2f} | "
        f"{pct(load['busy'], 90) / pct(load['idle'], 90):.2f} | "
        f"{pct(load['busy'], 99) / pct(load['idle'], 99):.2f} | |",
        "", f"![rag benchmark](benchmarks/{image})",
    ]
    return "\n".join(lines)
