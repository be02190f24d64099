"""The qdrant-edge store: its HNSW index is built by a child process without stalling search,
writes made meanwhile survive the switch, and a crash mid-build leaves a consistent store."""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path

import numpy as np
from qdrant_client.http import models as qm

from rag.edge import EdgeClient

DIM = 32


def points(rng: np.random.Generator, n: int, complete: bool = True) -> list[qm.PointStruct]:
    vectors = rng.standard_normal((n, DIM)).astype(np.float32)
    return [qm.PointStruct(id=str(uuid.uuid4()), vector={
                "dense": v.tolist(), "sparse": qm.SparseVector(indices=[1, int(i) % 50 + 2],
                                                               values=[1.0, 1.0])},
                payload={"doc_id": f"d{i % 7}", "complete": complete, "page": int(i % 5)})
            for i, v in zip(rng.integers(0, 10**6, n), vectors, strict=True)]


def make(root: Path, threshold: int = 1000) -> EdgeClient:
    client = EdgeClient(root, index_threshold=threshold)
    client.create_collection(
        "c", vectors_config={"dense": qm.VectorParams(size=DIM, distance=qm.Distance.COSINE)},
        sparse_vectors_config={"sparse": qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
        metadata={"embedding_model": "m"})
    for key in ("doc_id",):
        client.create_payload_index("c", key, qm.PayloadSchemaType.KEYWORD)
    client.create_payload_index("c", "complete", qm.PayloadSchemaType.BOOL)
    return client


def complete(value: bool) -> qm.Filter:
    return qm.Filter(must=[qm.FieldCondition(key="complete", match=qm.MatchValue(value=value))])


def test_index_is_built_out_of_process_without_stalling_search(tmp_path):
    rng = np.random.default_rng(0)
    client = make(tmp_path)
    for _ in range(6):
        client.upsert("c", points(rng, 500))
    assert client.indexing("c")
    query = rng.standard_normal(DIM).tolist()
    worst, written, during = 0.0, 0, 0
    deadline = time.monotonic() + 300
    while client.indexing("c"):  # searches and writes go on while the child builds
        assert time.monotonic() < deadline
        start = time.perf_counter()
        client.query_points("c", query=query, using="dense", query_filter=complete(True),
                            limit=5)
        worst = max(worst, time.perf_counter() - start)
        if during < 20:
            client.upsert("c", points(rng, 10))
            written, during = written + 10, during + 1
        time.sleep(0.005)
    col = client._cols["c"]
    assert col.gen != "gen-0" and (tmp_path / "c" / "CURRENT").read_text() == col.gen
    assert not (tmp_path / "c" / "gen-0").exists()
    total = 3000 + written
    assert client.count("c").count == total and client.count("c", complete(True)).count == total
    # The built index answers like exact search.
    got = client.query_points("c", query=query, using="dense", limit=10).points
    exact = client.query_points("c", query=query, using="dense", limit=10, exact=True).points
    assert [p.id for p in got] == [p.id for p in exact]
    # No search waited for the build (in-process, optimize() holds the GIL throughout).
    assert worst < 1.0, worst
    client.close()
    again = EdgeClient(tmp_path, index_threshold=1000)
    assert again.count("c").count == total
    assert again.get_collection("c").config.metadata == {"embedding_model": "m"}
    again.close()


def test_a_crash_mid_build_leaves_the_live_shard(tmp_path):
    rng = np.random.default_rng(1)
    client = make(tmp_path, threshold=10**6)
    client.upsert("c", points(rng, 50))
    client.upsert("c", points(rng, 5, complete=False))
    client.close()
    # What a kill -9 leaves: a half-copied next generation, a half-created collection.
    (tmp_path / "c" / "gen-1").mkdir()
    (tmp_path / "c" / "gen-1" / "junk").write_bytes(b"x")
    (tmp_path / ".new-d-1234").mkdir()
    again = EdgeClient(tmp_path, index_threshold=10**6)
    assert not (tmp_path / "c" / "gen-1").exists() and not (tmp_path / ".new-d-1234").exists()
    assert [c.name for c in again.get_collections().collections] == ["c"]
    assert again.count("c").count == 55
    # The completeness flag is stored as 0/1 and filters as the bool it was given.
    assert again.count("c", complete(False)).count == 5
    again.set_payload("c", {"complete": True}, points=complete(False))
    assert again.count("c", complete(True)).count == 55
    low = qm.Filter(must=[qm.FieldCondition(key="page", range=qm.Range(gte=3))])
    high = again.count("c", low).count
    assert 0 < high < 55
    again.delete("c", points_selector=qm.FilterSelector(filter=low))
    assert again.count("c").count == 55 - high
    again.delete_collection("c")
    assert not again.collection_exists("c") and not (tmp_path / "c").exists()
    again.close()


def search_thread_nices() -> dict[str, int]:
    out = {}
    for tid in Path("/proc/self/task").iterdir():
        try:  # a thread may exit between the listing and the read
            name = (tid / "comm").read_text().strip()
            stat = (tid / "stat").read_text()
        except FileNotFoundError:
            continue
        if name.startswith("edge-search"):
            out[f"{name}/{tid.name}"] = int(stat.rsplit(")", 1)[1].split()[16])
    return out


def test_collections_made_by_niced_ingest_threads_search_at_normal_priority(tmp_path):
    """A shard opened on an ingest thread would run its searches at the ingest's nice."""
    import os

    client = EdgeClient(tmp_path)
    before = set(search_thread_nices())

    def niced() -> None:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 10)
        make_in(client)

    thread = threading.Thread(target=niced)
    thread.start()
    thread.join()
    new = {k: v for k, v in search_thread_nices().items() if k not in before}
    assert new and max(new.values()) < 10, new
    client.close()


def make_in(client: EdgeClient) -> None:
    client.create_collection("n", vectors_config={"dense": qm.VectorParams(
        size=DIM, distance=qm.Distance.COSINE)})


def test_a_local_mode_store_moves_into_the_edge_store(tmp_path):
    from rag.config import Settings
    from rag.store import PointBatch, Store

    rng = np.random.default_rng(2)
    local = Store(Settings(data_dir=tmp_path, qdrant_url=None, embedded_engine="local"))
    local.create("old", "all-MiniLM-L6-v2", DIM)
    vectors = rng.standard_normal((30, DIM)).astype(np.float32)
    local.upsert("old", PointBatch(
        [str(uuid.uuid4()) for _ in range(30)], vectors, [([1, 2 + i], [1 + i / 30, 1.0])
                                                          for i in range(30)],
        [{"doc_id": "d", "document": "a.txt", "chunk_index": i, "page": None,
          "complete": True, "text": f"t{i}"} for i in range(30)]))
    queries = [(vectors[3].tolist(), None), (None, ([1, 5], [1.0, 1.0])),
               (vectors[3].tolist(), ([1, 5], [1.0, 1.0]))]
    expected = [local.search("old", d, sp, 5, []) for d, sp in queries]
    local.close()
    edge = Store(Settings(data_dir=tmp_path, qdrant_url=None))
    assert edge.engine == "edge" and (tmp_path / "qdrant.migrated").is_dir()
    assert not (tmp_path / "qdrant").exists()
    assert edge.info("old")["points"] == 30 and edge.info("old")["documents"] == 1
    got = [edge.search("old", d, sp, 5, []) for d, sp in queries]
    # The same hits in the same order; fused scores the same (equal RRF scores may order
    # their hits either way).
    assert [[h["text"] for h in g] for g in got[:2]] == \
        [[h["text"] for h in e] for e in expected[:2]]
    assert [round(h["score"], 4) for h in got[2]] == [round(h["score"], 4) for h in expected[2]]
    edge.close()
