"""rag: retrieval quality per mode, ingest against bare encode, search latency, search under load.

- Quality: recall@1, recall@3 and MRR of dense, sparse and hybrid search on the labelled
  set over Debian's git-doc pages (tests/rag/gitdocs.py), through the service's API.
- Ingest: the same real HTML pages go through `python -m rag` over HTTP (sandboxed
  extraction, chunking, embedding, writing to embedded Qdrant) and through the service's
  embedding step alone (its `ProcessEncoder`: a fresh child process, the same
  `SentenceTransformer.encode` call on the same groups of texts), alternating rounds.
- Search: the service's store (`Store.search`) on both embedded engines holding the same
  points, the same queries interleaved between them, as the service searches when nothing
  is being written and during an ingest (the `complete` filter).
- Under load: /search latency of a real process, idle and during three concurrent ingests.
"""

from __future__ import annotations

import contextlib
import logging
import os
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

from tinyllm.procs import ServiceProcess

from . import rag_search
from .rag_search import LOCAL_MAX, RACE_CHUNK_QUERIES, WARM_UP, pct, rank_from_top

log = logging.getLogger("bench.rag")
PAUSE_S = 1.0
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
    """Chunks/s of the service (torch, onnx) and of its embedding step alone, in turn.

    The bare side is the service's own embedding call and nothing else: `ProcessEncoder`
    (a spawned child loading the embedder with the service's batch size, device and torch
    threads, nice 0 as the services here, warmed up the same way), fed the very texts the
    service embeds in the groups it embeds them in (per document, `write_batch` chunks).
    """
    from rag.config import Settings
    from rag.encode_worker import ProcessEncoder
    from rag.ingest import CONTEXT_TOKENS, Ingestor, limits_of
    from services.extract import extract

    settings = Settings()
    ingestor = Ingestor.__new__(Ingestor)  # only its chunking: no store, no executor
    ingestor.settings, ingestor.embedder = settings, raw
    ingestor.chunk_tokens = min(settings.chunk_tokens, raw.max_chunk_tokens - CONTEXT_TOKENS)
    per_doc: list[list[list[str]]] = []  # each document's encode calls in the service
    for name, data in docs:
        doc = ingestor.chunk(name, data, extract(data, name, limits_of(settings)))
        texts = [ingestor.context(doc, c.index) + "\n" + c.text for c in doc.chunks]
        per_doc.append([texts[i:i + settings.write_batch]
                        for i in range(0, len(texts), settings.write_batch)])
    groups = [g for calls in per_doc for g in calls]
    chunks = sum(len(g) for g in groups)
    result: dict[str, Any] = {"service": [], "raw": [], "onnx": [], "chunks": chunks,
                              "bytes": sum(len(d) for _, d in docs),
                              "chunk_tokens": ingestor.chunk_tokens,
                              "batch_size": settings.embedding_batch_size,
                              "write_batch": settings.write_batch,
                              "threads": settings.ingest_threads}
    bare_args = {**raw.init_args, "model_dir": settings.embedding_model,
                 "batch_size": settings.embedding_batch_size,
                 "device": settings.embedding_device}
    # Normal priority for the race: the default nice only matters when searches compete.
    # The ingest child process pinned on: the bare side encodes in such a child too.
    same = {"RAG_INGEST_NICE": "0", "RAG_INGEST_PROCESS": "true"}
    with tempfile.TemporaryDirectory() as tmp, tempfile.TemporaryDirectory() as tmp2, \
            rag_process(tmp, **same) as proc, \
            rag_process(tmp2, **same, RAG_EMBEDDING_BACKEND="onnx",
                        RAG_EMBEDDING_ONNX_FILE=str(onnx_file)) as onnx_proc, \
            contextlib.closing(ProcessEncoder(bare_args, 0, settings.ingest_threads)) as bare, \
            httpx.Client(timeout=1200) as client:
        urls = {"service": proc.url, "onnx": onnx_proc.url}
        for url in urls.values():
            client.post(f"{url}/collections/warmup/documents",
                        files={"files": ("w.html", docs[0][1])}).raise_for_status()
        for group in per_doc[0]:  # the same warm-up document
            bare.encode(group)
        for url in urls.values():  # made untimed: a collection is made once, then filled
            for r in range(rounds):
                client.post(f"{url}/collections", json={"name": f"ingest{r}"}).raise_for_status()
        sides = ["raw", "service", "onnx"]
        for r in range(rounds):
            for side in sides[r % 3:] + sides[:r % 3]:  # rotate who goes first
                time.sleep(PAUSE_S)
                start = time.perf_counter()
                if side == "raw":
                    for group in groups:
                        bare.encode(group)
                else:
                    reply = client.post(f"{urls[side]}/collections/ingest{r}/documents",
                                        files=[("files", d) for d in docs])
                    reply.raise_for_status()
                    got = sum(d["chunks"] for d in reply.json()["documents"])
                    assert got == chunks, (got, chunks)
                result[side].append(chunks / (time.perf_counter() - start))
            log.info("round %d: raw %.1f, service %.1f, onnx %.1f chunks/s", r,
                     result["raw"][-1], result["service"][-1], result["onnx"][-1])
    return result


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
    axes[1].bar(["embedding step alone", "service torch", "service onnx"],
                [statistics.median(ingest[k]) for k in ("raw", "service", "onnx")],
                color=["#888", "#2a7", "#27a"])
    axes[1].set_ylabel("chunks / s (median)")
    axes[1].set_title("Ingest, real HTML, same texts")
    for engine, color in (("local", "#a52"), ("edge", "#27a")):
        rows = search.get(engine, {})
        sizes = sorted(rows)
        for key, style, label in (("dense_p99", "o-", "dense"), ("hybrid_p99", "s-", "hybrid"),
                                  ("hybrid_filtered_p99", "s--", "hybrid, during ingest")):
            axes[2].plot(sizes, [rows[n][key] for n in sizes], style, color=color,
                         label=f"{engine} {label}", alpha=0.6 if key == "dense_p99" else 1)
    axes[2].axhline(20, color="#888", lw=0.8, ls=":")
    axes[2].axhline(40, color="#888", lw=0.8, ls=":")
    axes[2].set_xscale("log")
    axes[2].set_yscale("log")
    axes[2].set_xlabel("chunks")
    axes[2].set_ylabel("ms per Store.search (p99)")
    axes[2].set_title("Embedded store search: local vs edge, interleaved")
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
    search = rag_search.bench_search(sizes, 300 if quick else 1000)
    log.info("under load")
    load = bench_under_load(docs[:6], 300)
    return report(out_dir, quality, onnx_quality, ingest, search, load, docs, sizes)


def _p99_ranks(counts: set[int]) -> str:
    """Which sample p99 is, per sample count: "the largest of 60, the 4th largest of 300"."""
    def nth(k: int) -> str:
        if k == 1:
            return ""
        suffix = "th" if 10 <= k % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(k % 10, "th")
        return f"{k}{suffix} "

    return ", ".join(f"the {nth(rank_from_top(n, 99))}largest of {n:,}" for n in sorted(counts))


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
    threads = (f"{ingest['threads']} torch threads" if ingest["threads"]
               else "torch's default threads, one per core")
    rounds = len(ingest["raw"])
    lines = [
        "## rag", "",
        f"Retrieval quality: {len(gitdocs.QUESTIONS)} questions in a user's words over "
        f"{len(gitdocs.DOCUMENTS)} pages of Debian's `git-doc` (HTML), each with the one "
        "page that answers it; ranks are over distinct documents. Every question is asked "
        "once in each mode, of each embedder.", "",
        "| mode | recall@1 | recall@3 | MRR |", "|---|---:|---:|---:|",
    ]
    lines += [f"| {m} | {q['recall@1']:.3f} | {q['recall@3']:.3f} | {q['mrr']:.3f} |"
              for m, q in quality.items()]
    lines += [f"| {m}, ONNX int8 embedder | {q['recall@1']:.3f} | {q['recall@3']:.3f} | "
              f"{q['mrr']:.3f} |" for m, q in onnx_quality.items()]
    lines += [
        "", f"Ingest: {len(docs)} git-doc HTML pages, {mb:.2f} MB, {chunks} chunks of up to "
        f"{ingest['chunk_tokens']} tokens plus a title/section line, uploaded in one request "
        "to `python -m rag` (embedded Qdrant, ingest at normal priority, batches embedded in "
        "its child process; each round's collection made beforehand, untimed) against the "
        "service's embedding step alone: the same texts in the same calls (per document, "
        f"groups of {ingest['write_batch']} chunks) to the service's own `ProcessEncoder`, a "
        "fresh spawned child process at nice 0 running the same `SentenceTransformer.encode` "
        f"(batch size {ingest['batch_size']}, length-sorted within each call, normalised, "
        f"float32, {threads}), warmed up with the same page. {rounds} "
        f"round{'s' if rounds != 1 else ''}, each side once a round, the order rotating (the "
        "first side moves each round); ratios paired within a round.", "",
        "| path | chunks/s (median) | MB/s | ratio to bare (min / median / max) |",
        "|---|---:|---:|---:|",
        f"| bare: the service's embedding step alone (sentence-transformers, child process) | "
        f"{raw:.1f} | {mb / (chunks / raw):.3f} | 1.00 |",
        f"| rag service (HTTP, extract, chunk, embed, dense+sparse write) | {svc:.1f} | "
        f"{mb / (chunks / svc):.3f} | {min(ratios):.2f} / {statistics.median(ratios):.2f} / "
        f"{max(ratios):.2f} |",
        f"| rag service, `RAG_EMBEDDING_BACKEND=onnx` (int8) | {onnx:.1f} | "
        f"{mb / (chunks / onnx):.3f} | {min(onnx_ratios):.2f} / "
        f"{statistics.median(onnx_ratios):.2f} / {max(onnx_ratios):.2f} |", "",
    ]
    counts = {int(r["queries"]) for rows in search.values() for r in rows.values()}
    lines += [
        "Search: the service's `Store.search` on each embedded engine, k=5, payload returned, "
        "clustered synthetic vectors (200 centres) with queries drawn near them, random sparse "
        "terms. *local* is qdrant-client's local mode (exact scan in Python); *edge* is "
        "qdrant-edge (`RAG_EMBEDDED_ENGINE=edge`, the default) after its HNSW index is built "
        "by the child process (*index s*: the wait for it after the fill). At each size both "
        "stores are filled with the same points (one after the other, *fill s*), then the "
        "timed searches are interleaved: for each kind, every query runs on both engines, "
        "the engine going first alternating query by query, with the same query vector and "
        "sparse terms on both sides; *queries* is the count per engine and kind, the same "
        f"for both (about {RACE_CHUNK_QUERIES:,} / chunks, so local mode's linear cost "
        f"stays near 40 s a size); above {LOCAL_MAX:,} chunks edge runs alone, with all its "
        "queries. *no ingest* is the path the service takes when nothing is being written "
        "(`force_filter` off), *during ingest* the one it takes while an ingest writes (the "
        "`complete == 1` filter): local mode filters only then, edge always does (its "
        "payload index makes it cheap), so edge's two columns time the same path twice and "
        "differ only by noise. *recall* is edge's HNSW top-10 against its exact search "
        "(`hnsw_ef` 128) over the first 100 queries, calling the client directly: it "
        "measures the index, not the service's path. p50 / p99 are nearest-rank samples "
        f"(p99 is {_p99_ranks(counts)}), after {WARM_UP} untimed searches per engine that "
        "fault the index in; max in the last column.", "",
        "| engine | chunks | queries | dense, no ingest p50 / p99 ms | hybrid, no ingest "
        "p50 / p99 | dense, during ingest p50 / p99 | hybrid, during ingest p50 / p99 | "
        "recall@10 | fill s | index s | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    rows = sorted(((size, engine, r) for engine, by_size in search.items()
                   for size, r in by_size.items()), key=lambda row: row[0])
    for size, engine, r in rows:
        worst = max(r[k] for k in r if k.endswith("_max"))
        alone = sum(size in by_size for by_size in search.values()) == 1
        lines.append(
            f"| {engine} | {size:,} | {r['queries']:,.0f}{' (alone)' if alone else ''} | "
            f"{r['dense_p50']:.1f} / {r['dense_p99']:.1f} | {r['hybrid_p50']:.1f} / "
            f"{r['hybrid_p99']:.1f} | {r['dense_filtered_p50']:.1f} / "
            f"{r['dense_filtered_p99']:.1f} | {r['hybrid_filtered_p50']:.1f} / "
            f"{r['hybrid_filtered_p99']:.1f} | "
            f"{format(r['recall'], '.3f') if 'recall' in r else '–'} | {r['fill_s']:.0f} | "
            f"{r.get('index_s', 0):.0f} | {worst:.0f} |")
    if "edge" in search and "local" in search and set(search["edge"]) & set(search["local"]):
        top = max(set(search["edge"]) & set(search["local"]))
        e, lo = search["edge"][top], search["local"][top]
        lines += ["", f"At {top:,} chunks ({e['queries']:.0f} interleaved queries each) edge "
                      f"answers hybrid searches {lo['hybrid_p99'] / e['hybrid_p99']:.0f}x "
                      f"faster at p99 than local mode ({e['hybrid_p99']:.1f} vs "
                      f"{lo['hybrid_p99']:.1f} ms) with no ingest writing, "
                      f"{lo['hybrid_filtered_p99'] / e['hybrid_filtered_p99']:.0f}x during "
                      f"an ingest ({e['hybrid_filtered_p99']:.1f} vs "
                      f"{lo['hybrid_filtered_p99']:.1f} ms)."]
    busy_running = sum(load["running_after"])
    n_load = len(load["idle"])
    lines += [
        "", "Search during ingests: `/search` (hybrid) against a real process, idle and while "
        f"three background ingests of {len(docs[:6])} pages each run (defaults: edge store, "
        f"ingest batches embedded in a child process at nice {Settings().ingest_nice}; "
        f"{busy_running:.0f} of 3 still running at the end of the measurement), "
        f"{n_load} searches each, one after the other: idle first, then during the ingests "
        f"(they cannot be interleaved). Nearest-rank percentiles (p99 is "
        f"{_p99_ranks({n_load})}).", "",
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
