"""rag: ingest through the service against raw sentence-transformers, and search latency.

Ingest: the same documents go through `python -m rag` over HTTP (extract, chunk, embed,
write to embedded Qdrant) and through a bare `SentenceTransformer.encode` of the very same
chunks, alternating rounds so both meet the same machine noise. Search: the service's store
code path on embedded Qdrant at growing sizes, with synthetic unit vectors (brute force
there, so the vectors' values do not change the cost).
"""

from __future__ import annotations

import logging
import random
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import httpx
import numpy as np

from tinyllm.procs import ServiceProcess

log = logging.getLogger("bench.rag")
PAUSE_S = 1.0
WORDS = ("river mountain engine protocol harvest library signal orbit garden theorem market "
         "winter copper canvas journey lantern circuit meadow archive compass falcon granite "
         "harbor lyric nebula quartz saddle timber velvet whistle").split()


def corpus(docs: int, paragraphs: int) -> list[tuple[str, bytes]]:
    rnd = random.Random(42)
    out = []
    for d in range(docs):
        paras = []
        for p in range(paragraphs):
            sentences = [" ".join(rnd.choice(WORDS) for _ in range(rnd.randint(8, 16)))
                         .capitalize() + "." for _ in range(6)]
            paras.append(f"Section {d}.{p}. " + " ".join(sentences))
        out.append((f"doc{d}.txt", "\n\n".join(paras).encode()))
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q))


def bench_ingest(rounds: int, docs: list[tuple[str, bytes]]) -> dict[str, list[float]]:
    """Chunks/s of the service and of raw encode, alternating, same chunks."""
    from rag.chunking import chunk_text
    from rag.config import Settings
    from rag.embedder import Embedder

    settings = Settings()
    raw = Embedder(None, settings.embedding_batch_size)
    size = min(settings.chunk_tokens, raw.max_chunk_tokens)
    chunks = [c.text for _, data in docs
              for c in chunk_text(data.decode(), raw.tokenizer, size, settings.chunk_overlap)]
    total_bytes = sum(len(d) for _, d in docs)
    raw.encode(chunks[:64])  # warm-up, as the service's first request is not timed either
    result: dict[str, list[float]] = {"service": [], "raw": [], "chunks": [float(len(chunks))],
                                      "bytes": [float(total_bytes)]}
    with tempfile.TemporaryDirectory() as tmp, ServiceProcess(
            "rag", "RAG_", env={"RAG_DATA_DIR": tmp, "QDRANT_URL": "", "RAG_API_KEY": ""},
            log_path=Path(tmp) / "rag.log", health_timeout=180) as proc, \
            httpx.Client(base_url=proc.url, timeout=600) as client:
        client.post("/collections/warmup/documents",
                    files={"files": ("w.txt", docs[0][1][:5000])}).raise_for_status()
        def time_raw() -> None:
            start = time.perf_counter()
            raw.encode(chunks)
            result["raw"].append(len(chunks) / (time.perf_counter() - start))

        def time_service(r: int) -> None:
            start = time.perf_counter()
            reply = client.post(f"/collections/ingest{r}/documents",
                                files=[("files", (n, d)) for n, d in docs])
            reply.raise_for_status()
            elapsed = time.perf_counter() - start
            got = sum(d["chunks"] for d in reply.json()["documents"])
            assert got == len(chunks), (got, len(chunks))
            result["service"].append(len(chunks) / elapsed)

        for r in range(rounds):
            # Alternate who goes first, and let the other process's threads settle before each.
            for side in (("raw", "service") if r % 2 == 0 else ("service", "raw")):
                time.sleep(PAUSE_S)
                if side == "raw":
                    time_raw()
                else:
                    time_service(r)
            log.info("round %d: raw %.1f, service %.1f chunks/s", r, result["raw"][-1],
                     result["service"][-1])
    return result


def bench_search(sizes: list[int], queries: int) -> dict[int, dict[str, float]]:
    """p50/p99 of the store's search (and with the `complete` filter) as the collection grows."""
    from qdrant_client.http import models as qm

    from rag.config import Settings
    from rag.store import Store, _match

    rng = np.random.default_rng(0)
    out: dict[int, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Settings(data_dir=Path(tmp), qdrant_url=None))
        store.create("bench", "all-MiniLM-L6-v2", 384)
        filler = " ".join(WORDS) * 4  # payload text of a realistic chunk's length
        n = 0
        for size in sizes:
            start = time.perf_counter()
            while n < size:
                k = min(1000, size - n)
                vectors = rng.standard_normal((k, 384)).astype(np.float32)
                vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
                payloads = [{"doc_id": f"d{(n + i) // 100}", "document": f"doc{(n + i) // 100}",
                             "chunk_index": (n + i) % 100, "complete": True, "page": None,
                             "start": 0, "end": len(filler), "text": filler}
                            for i in range(k)]
                store.upsert("bench", [str(uuid.uuid4()) for _ in range(k)], vectors, payloads)
                n += k
            fill_s = time.perf_counter() - start
            qs = rng.standard_normal((queries, 384)).astype(np.float32)
            plain, strict = [], []
            for q in qs:
                t = time.perf_counter()
                store.search("bench", q.tolist(), 5, [])
                plain.append((time.perf_counter() - t) * 1000)
            with store.locked() as c:
                for q in qs[: max(5, queries // 5)]:
                    t = time.perf_counter()
                    c.query_points("bench", query=q.tolist(), limit=5, with_payload=True,
                                   query_filter=qm.Filter(must=[_match("complete", True)]))
                    strict.append((time.perf_counter() - t) * 1000)
            out[size] = {"p50": pct(plain, 50), "p99": pct(plain, 99),
                         "filtered_p50": pct(strict, 50), "fill_s": fill_s}
            log.info("search at %d: p50 %.1f ms, p99 %.1f ms", size, out[size]["p50"],
                     out[size]["p99"])
        store.close()
    return out


def plot(out_dir: Path, ingest: dict[str, list[float]],
         search: dict[int, dict[str, float]]) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    left.bar(["raw encode", "rag service"],
             [statistics.median(ingest["raw"]), statistics.median(ingest["service"])],
             color=["#888", "#2a7"])
    left.set_ylabel("chunks / s (median)")
    left.set_title("Ingest throughput, same chunks")
    sizes = sorted(search)
    right.plot(sizes, [search[s]["p50"] for s in sizes], "o-", label="p50")
    right.plot(sizes, [search[s]["p99"] for s in sizes], "s--", label="p99")
    right.plot(sizes, [search[s]["filtered_p50"] for s in sizes], "^:",
               label="p50 with payload filter")
    right.set_xscale("log")
    right.set_xlabel("chunks in the collection")
    right.set_ylabel("ms per search (store, embedded)")
    right.set_title("Search latency, embedded Qdrant")
    right.legend()
    fig.tight_layout()
    name = "rag.png"
    fig.savefig(out_dir / name, dpi=110)
    plt.close(fig)
    return name


def run(out_dir: Path, quick: bool = False) -> str:
    """Run both comparisons; write the plot; return the markdown section."""
    docs = corpus(3, 40) if quick else corpus(4, 60)
    ingest = bench_ingest(2 if quick else 6, docs)
    sizes = [1000, 5000, 10000] if quick else [1000, 10000, 50000]
    search = bench_search(sizes, 30 if quick else 100)
    image = plot(out_dir, ingest, search)
    raw, svc = statistics.median(ingest["raw"]), statistics.median(ingest["service"])
    # Rounds are paired (back to back), so their ratios cancel most of the machine's drift.
    ratios = [s / r for s, r in zip(ingest["service"], ingest["raw"], strict=True)]
    chunks, mb = int(ingest["chunks"][0]), ingest["bytes"][0] / 1e6
    seconds = chunks / svc
    lines = [
        "## rag", "",
        f"Ingest: {len(docs)} text documents, {mb:.2f} MB, {chunks} chunks of up to 254 "
        "tokens, uploaded in one request to `python -m rag` (embedded Qdrant) against "
        "`SentenceTransformer.encode` of the same chunks in this process; "
        f"{len(ingest['raw'])} paired rounds (order alternating), medians.", "",
        "| path | chunks/s | MB/s | ratio to raw (median of paired rounds) |",
        "|---|---:|---:|---:|",
        f"| raw sentence-transformers encode | {raw:.1f} | {mb / (chunks / raw):.3f} | 1.00 |",
        f"| rag service (HTTP upload, extract, chunk, embed, write) | {svc:.1f} | "
        f"{mb / seconds:.3f} | {statistics.median(ratios):.2f} |", "",
        "Per-round ratios: " + ", ".join(f"{r:.2f}" for r in ratios) + ".", "",
        "Search: the service's store code (`Store.search`) on embedded Qdrant, k=5, payload "
        "returned, synthetic unit vectors; `filtered` is the same query with the "
        "`complete == true` payload filter that embedded mode applies only while an ingest "
        "is writing.", "",
        "| chunks | p50 ms | p99 ms | filtered p50 ms | filtered / plain | fill s |",
        "|---:|---:|---:|---:|---:|---:|",
    ]
    for size in sizes:
        s = search[size]
        lines.append(f"| {size:,} | {s['p50']:.1f} | {s['p99']:.1f} | {s['filtered_p50']:.1f} "
                     f"| {s['filtered_p50'] / s['p50']:.1f}x | {s['fill_s']:.0f} |")
    lines += ["", f"![rag benchmark](benchmarks/{image})"]
    return "\n".join(lines)
