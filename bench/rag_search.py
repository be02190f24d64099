"""rag's search race: the service's store (`Store.search`) on both embedded engines holding
the same points, the same queries interleaved between them, as the service searches when
nothing is being written and during an ingest (the `complete` filter)."""

from __future__ import annotations

import contextlib
import logging
import os
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger("bench.rag")
WARM_UP = 10  # searches before the timed ones, per engine and size
LOCAL_MAX = int(os.environ.get("RAG_BENCH_LOCAL_MAX", "10000"))
# Queries x chunks per size while both engines race (the same count for both): a local-mode
# search grows with the chunks (the four kinds together ~65 ms at 1k, ~650 ms at 10k), so
# about 40 s of local searching per size: 600 queries at 1k, 60 at 10k (at most as asked).
RACE_CHUNK_QUERIES = 600_000
# (mode, Store.force_filter): the service with no ingest writing, then during an ingest.
KINDS = [("dense", False), ("hybrid", False), ("dense", True), ("hybrid", True)]


def pct(values: list[float], q: int) -> float:
    """The nearest-rank q-th percentile: always a sample (see `rank_from_top`)."""
    ordered = sorted(values)
    return ordered[max(1, -(-len(ordered) * q // 100)) - 1]


def rank_from_top(n: int, q: int) -> int:
    """Which largest of n samples `pct(values, q)` is: p99 of 60 is the 1st, of 300 the 4th."""
    return n - max(1, -(-n * q // 100)) + 1


def race_queries(size: int, queries: int) -> int:
    """Timed queries per engine at `size` when both engines run."""
    return min(queries, max(20, RACE_CHUNK_QUERIES // size))


def bench_search(sizes: list[int], queries: int, engines: tuple[str, ...] = ("local", "edge")
                 ) -> dict[str, dict[int, dict[str, float]]]:
    """p50/p99 of Store.search per embedded engine, dense and hybrid, as the service searches
    with no ingest writing and during one; for edge also its HNSW recall@10 against exact.

    At each size every engine holds the same points, then the timed queries are interleaved:
    each runs on every engine, the one going first alternating query by query. Local mode
    stops at LOCAL_MAX chunks: its fill and each of its searches grow linearly (at 10k on a
    busy 2-core machine: 153 s to fill, 0.4-1.3 s a search), so 100k would take an hour.
    """
    from rag.config import Settings
    from rag.store import Store

    rng = np.random.default_rng(0)
    centers = rng.standard_normal((200, 384)).astype(np.float32)

    def clustered(k: int) -> np.ndarray:
        v = centers[rng.integers(0, 200, k)] + \
            0.5 * rng.standard_normal((k, 384)).astype(np.float32)
        return v / np.linalg.norm(v, axis=1, keepdims=True)

    out: dict[str, dict[int, dict[str, float]]] = {engine: {} for engine in engines}
    stores: dict[str, Store] = {}
    with contextlib.ExitStack() as folders:
        try:
            for engine in engines:
                tmp = folders.enter_context(tempfile.TemporaryDirectory())
                stores[engine] = Store(Settings(data_dir=Path(tmp), qdrant_url=None,
                                                embedded_engine=engine))
                stores[engine].create("bench", "all-MiniLM-L6-v2", 384)
            n = 0
            for size in sizes:
                if size > LOCAL_MAX and "local" in stores:
                    stores.pop("local").close()
                if not stores:
                    break
                batches = _points(n, size, clustered, rng)
                n = size
                rows = {engine: _fill(store, batches) for engine, store in stores.items()}
                count = race_queries(size, queries) if len(stores) > 1 else queries
                qs = clustered(count)  # queries near the documents, as real ones are
                _race(stores, rows, qs, [_terms(rng, 4) for _ in range(count)],
                      clustered(WARM_UP))
                if "edge" in stores:
                    rows["edge"]["recall"] = _recall(stores["edge"], qs[:100])
                for engine, row in rows.items():
                    row["queries"] = count
                    out[engine][size] = row
                    log.info("%s search at %d: %s", engine, size,
                             {k: round(v, 3) for k, v in row.items()})
        finally:
            for store in stores.values():
                store.close()
    return out


def _terms(rng: np.random.Generator, k: int) -> list[int]:
    return [int(t) for t in np.unique(rng.integers(0, 5000, k))]


def _points(n: int, size: int, clustered: Callable[[int], np.ndarray],
            rng: np.random.Generator) -> list[Any]:
    """The points n..size of the bench collection, in batches of 1,000 (for every engine)."""
    from rag.store import PointBatch

    filler = "river mountain engine protocol harvest library signal orbit " * 20
    batches = []
    for first in range(n, size, 1000):
        k = min(1000, size - first)
        terms = [_terms(rng, 40) for _ in range(k)]
        payloads = [{"doc_id": f"d{i // 100}", "document": f"doc{i // 100}",
                     "chunk_index": i % 100, "complete": True, "page": None, "start": 0,
                     "end": len(filler), "text": filler} for i in range(first, first + k)]
        batches.append(PointBatch([str(uuid.uuid4()) for _ in range(k)], clustered(k),
                                  [(t, [1.0] * len(t)) for t in terms], payloads))
    return batches


def _fill(store: Any, batches: list[Any]) -> dict[str, float]:
    """Write the batches (engines in turn, so neither fill competes with the other); for
    edge, wait for the index its child process builds."""
    start = time.perf_counter()
    for batch in batches:
        store.upsert("bench", batch)
    row = {"fill_s": time.perf_counter() - start}
    if store.engine == "edge":
        start = time.perf_counter()
        while store.client.indexing("bench"):
            time.sleep(0.5)
        row["index_s"] = time.perf_counter() - start
    return row


def _race(stores: dict[str, Any], rows: dict[str, dict[str, float]], qs: np.ndarray,
          terms: list[list[int]], warm: np.ndarray) -> None:
    """Time `Store.search` of each kind: every query on every engine, the first alternating."""
    names = list(stores)
    for i, q in enumerate(warm):  # fault the indexes' pages in first: not counted
        for name in names if i % 2 == 0 else names[::-1]:
            stores[name].search("bench", q.tolist(), ([1], [1.0]), 5, [])
    vectors = [q.tolist() for q in qs]
    for mode, strict in KINDS:
        times: dict[str, list[float]] = {name: [] for name in names}
        for store in stores.values():
            store.force_filter = strict
        for i, (dense, t) in enumerate(zip(vectors, terms, strict=True)):
            sparse = (t, [1.0] * len(t)) if mode == "hybrid" else None
            for name in names if i % 2 == 0 else names[::-1]:
                start = time.perf_counter()
                stores[name].search("bench", dense, sparse, 5, [])
                times[name].append((time.perf_counter() - start) * 1000)
        for store in stores.values():
            store.force_filter = False
        key = f"{mode}{'_filtered' if strict else ''}"
        for name, samples in times.items():
            rows[name].update({f"{key}_p50": pct(samples, 50), f"{key}_p99": pct(samples, 99),
                               f"{key}_max": max(samples)})


def _recall(store: Any, qs: np.ndarray) -> float:
    """Edge's HNSW top-10 against its exact search: the index itself, so the client directly."""
    hits = []
    for q in qs:
        got = store.client.query_points("bench", query=q.tolist(), using="dense",
                                        limit=10).points
        exact = store.client.query_points("bench", query=q.tolist(), using="dense", limit=10,
                                          exact=True).points
        hits.append(len({p.id for p in got} & {p.id for p in exact}) / 10)
    return float(np.mean(hits))
