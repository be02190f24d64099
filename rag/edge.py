"""Embedded store on qdrant-edge (Qdrant's in-process engine), HNSW built out of process.

`EdgeClient` offers the part of `QdrantClient`'s API that `rag.store.Store` uses, so the
store keeps one code path for every engine. Each collection is a folder:

    NAME/meta.json    recorded model, vector size, schema (written once, at creation)
    NAME/CURRENT      the name of the live shard folder ("gen-N"), replaced atomically
    NAME/gen-N/       the live qdrant-edge shard (segments + WAL)

qdrant-edge holds the GIL for every call, and `optimize()` (the HNSW build) runs for
minutes at 100k points: in this process it would freeze every search and `/health`.
So the index is built by a child process on a copy: with the collection's writes paused,
the child copies the flushed shard; writes resume (and are also kept in a journal) while
the child optimizes at the lowest CPU priority; the built shard is then opened here, the
journal replayed onto it, and `CURRENT` switched. A crash at any step leaves `CURRENT` on a
shard that has every acknowledged write; stray folders are removed at the next start.
Booleans are stored as 0/1 integers (qdrant-edge matches a bool payload only as an integer).
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import qdrant_edge as E
from qdrant_client.http import models as qm

log = logging.getLogger(__name__)
RRF_K = 2  # Qdrant's default ranking constant (server and qdrant-client local mode alike)
INDEX_TYPES = {qm.PayloadSchemaType.KEYWORD: E.PayloadSchemaType.Keyword,
               qm.PayloadSchemaType.INTEGER: E.PayloadSchemaType.Integer,
               qm.PayloadSchemaType.BOOL: E.PayloadSchemaType.Integer}


INDEX_NAMES = {qm.PayloadSchemaType.KEYWORD: "Keyword", qm.PayloadSchemaType.INTEGER: "Integer",
               qm.PayloadSchemaType.BOOL: "Integer"}


def _value(v: Any) -> Any:
    return int(v) if isinstance(v, bool) else v


def _payload(p: dict[str, Any]) -> dict[str, Any]:
    return {k: _value(v) for k, v in p.items()}


def _condition(c: Any) -> Any:
    if isinstance(c, qm.Filter):
        return to_filter(c)
    if isinstance(c, qm.FieldCondition):
        if isinstance(c.match, qm.MatchValue):
            return E.FieldCondition(c.key, match=E.MatchValue(_value(c.match.value)))
        if isinstance(c.match, qm.MatchAny):
            return E.FieldCondition(c.key, match=E.MatchAny([_value(v) for v in c.match.any]))
        if c.range is not None:
            r: Any = c.range  # rag's ranges are numeric
            return E.FieldCondition(c.key, range=E.RangeFloat(gte=r.gte, gt=r.gt, lte=r.lte,
                                                              lt=r.lt))
    raise NotImplementedError(f"condition not supported by the edge store: {c!r}")


def to_filter(f: qm.Filter | None) -> E.Filter | None:
    if f is None:
        return None
    def conds(items: Any) -> list[Any] | None:
        return [_condition(c) for c in items] if items else None

    return E.Filter(must=conds(f.must), should=conds(f.should), must_not=conds(f.must_not))


def _query(q: Any, using: str | None) -> Any:
    if isinstance(q, qm.FusionQuery):
        return E.Fusion.Rrf(k=RRF_K)
    if isinstance(q, qm.SparseVector):
        return E.Query.Nearest(E.SparseVector(list(q.indices), list(q.values)), using=using)
    return E.Query.Nearest(list(q), using=using)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Collection:
    """One collection: its live shard, and the journal kept while an index is built."""

    def __init__(self, folder: Path, meta: dict[str, Any], gen: str, shard: Any) -> None:
        self.folder, self.meta, self.gen, self.shard = folder, meta, gen, shard
        self.lock = threading.RLock()  # writes and the shard switch; searches never wait
        self.journal: list[Any] | None = None
        self.pending = 0  # points written since the live shard's index was built
        self.building = False
        self.deleted = False
        self.retry_at = 0.0  # after a failed build, the next waits a while

    def write(self, op: Any, points: int = 0, what: str = "upsert") -> None:
        with self.lock:
            start = time.perf_counter()
            self.shard.update(op)
            took = time.perf_counter() - start
            if took > 0.05:  # the GIL is held throughout: searches waited this long
                log.warning("slow %s in %s: %.0f ms", what, self.folder.name, took * 1000)
            if self.journal is not None:
                self.journal.append(op)
            self.pending += points


class EdgeClient:
    """qdrant-edge shards under one folder, answering like qdrant-client."""

    def __init__(self, root: Path, index_threshold: int = 20000, hnsw_ef: int = 128,
                 index_threads: int = 1) -> None:
        self.root = root
        self.index_threshold, self.hnsw_ef, self.index_threads = (index_threshold, hnsw_ef,
                                                                  index_threads)
        self._cols: dict[str, Collection] = {}
        self._guard = threading.Lock()
        self._builder = threading.Lock()  # one index build at a time (it takes a core)
        self._children: set[subprocess.Popen] = set()
        self._closed = False
        # Shards are created and opened on this one thread, started here at normal priority:
        # a shard's search threads inherit the priority of the thread that opens it, and an
        # ingest thread (niced) would otherwise leave every search of it at the ingest's nice.
        self._opener = ThreadPoolExecutor(1, thread_name_prefix="rag-edge-open")
        self._opener.submit(lambda: None).result()
        root.mkdir(parents=True, exist_ok=True)
        for folder in sorted(root.iterdir()):
            if folder.name.startswith("."):  # a collection half created or half deleted
                shutil.rmtree(folder, ignore_errors=True)
            elif (folder / "CURRENT").is_file():
                self._cols[folder.name] = self._open(folder)

    def _open(self, folder: Path) -> Collection:
        gen = (folder / "CURRENT").read_text().strip()
        for stray in folder.glob("gen-*"):  # builds a crash interrupted
            if stray.name != gen:
                shutil.rmtree(stray, ignore_errors=True)
        meta = json.loads((folder / "meta.json").read_text())
        col = Collection(folder, meta, gen, self._load(folder / gen))
        col.pending = max(0, col.shard.info().points_count - int(meta.get("indexed", 0)))
        self._maybe_index(col)
        return col

    def _load(self, path: Path) -> Any:
        return self._opener.submit(E.EdgeShard.load, str(path)).result()

    def _col(self, name: str) -> Collection:
        col = self._cols.get(name)
        if col is None:
            raise KeyError(name)
        return col

    # --- collections -------------------------------------------------------------------

    def get_collections(self) -> Any:
        return SimpleNamespace(collections=[SimpleNamespace(name=n) for n in list(self._cols)])

    def collection_exists(self, name: str) -> bool:
        return name in self._cols

    def get_collection(self, name: str) -> Any:
        meta = self._col(name).meta
        vectors = {k: SimpleNamespace(size=v) for k, v in meta["dense"].items()}
        return SimpleNamespace(config=SimpleNamespace(
            metadata=meta.get("metadata"), params=SimpleNamespace(vectors=vectors)))

    def create_collection(self, name: str, vectors_config: Any,
                          sparse_vectors_config: dict[str, qm.SparseVectorParams] | None = None,
                          metadata: dict[str, Any] | None = None,
                          payload_indexes: dict[str, Any] | None = None) -> bool:
        """Create the collection; its shard and `payload_indexes` (field: schema) are made
        by a child process (creating a payload index holds the GIL for up to 0.3 s)."""
        dense = vectors_config if isinstance(vectors_config, dict) else {"": vectors_config}
        spec = {"dense": {k: v.size for k, v in dense.items()},
                "idf": {k: v.modifier == qm.Modifier.IDF
                        for k, v in (sparse_vectors_config or {}).items()},
                "indexes": {k: INDEX_NAMES[v] for k, v in (payload_indexes or {}).items()},
                "threads": self.index_threads}
        meta = {"metadata": metadata, "dense": spec["dense"], "indexed": 0}
        with self._guard:
            if name in self._cols:
                return False
            # Built under a hidden name, then renamed: a crash leaves no half collection.
            tmp = self.root / f".new-{name}-{uuid.uuid4().hex[:8]}"
            tmp.mkdir()
            subprocess.run([sys.executable, "-m", "rag.edge", "create", str(tmp / "gen-0"),
                            json.dumps(spec)], check=True, stdout=subprocess.DEVNULL)
            _write_atomic(tmp / "meta.json", json.dumps(meta))
            _write_atomic(tmp / "CURRENT", "gen-0")
            os.replace(tmp, self.root / name)
            self._cols[name] = Collection(self.root / name, meta, "gen-0",
                                          self._load(self.root / name / "gen-0"))
        return True

    def delete_collection(self, name: str) -> None:
        with self._guard:
            col = self._cols.pop(name)
        with col.lock:
            col.deleted = True
            col.shard.close()
            trash = self.root / f".del-{name}-{uuid.uuid4().hex[:8]}"
            os.replace(col.folder, trash)
        shutil.rmtree(trash, ignore_errors=True)

    def create_payload_index(self, name: str, field_name: str, field_schema: Any) -> None:
        self._col(name).write(E.UpdateOperation.create_field_index(
            field_name, INDEX_TYPES[field_schema]))

    # --- points ------------------------------------------------------------------------

    def upsert(self, name: str, points: list[qm.PointStruct], wait: bool = True) -> None:
        def vector(v: Any) -> Any:
            return E.SparseVector(list(v.indices), list(v.values)) \
                if isinstance(v, qm.SparseVector) else list(v)

        col = self._col(name)
        col.write(E.UpdateOperation.upsert_points([
            E.Point(p.id, {k: vector(v) for k, v in p.vector.items()},  # type: ignore[union-attr]
                    _payload(p.payload or {})) for p in points]), len(points))
        self._maybe_index(col)

    def set_payload(self, name: str, payload: dict[str, Any], points: qm.Filter,
                    wait: bool = True) -> None:
        self._col(name).write(E.UpdateOperation.set_payload_by_filter(
            to_filter(points) or E.Filter(), _payload(payload)), what="set_payload")

    def delete(self, name: str, points_selector: qm.FilterSelector, wait: bool = True) -> None:
        self._col(name).write(E.UpdateOperation.delete_points_by_filter(
            to_filter(points_selector.filter) or E.Filter()), what="delete")

    def count(self, name: str, count_filter: qm.Filter | None = None, exact: bool = True) -> Any:
        return SimpleNamespace(count=self._col(name).shard.count(
            E.CountRequest(exact=True, filter=to_filter(count_filter))))

    def scroll(self, name: str, scroll_filter: qm.Filter | None = None, limit: int = 10,
               offset: Any = None, with_payload: bool = True, with_vectors: bool = False
               ) -> tuple[list[Any], Any]:
        return self._col(name).shard.scroll(E.ScrollRequest(
            offset=offset, limit=limit, filter=to_filter(scroll_filter),
            with_payload=with_payload, with_vector=with_vectors))

    def query_points(self, name: str, query: Any = None, using: str | None = None,
                     prefetch: list[qm.Prefetch] | None = None,
                     query_filter: qm.Filter | None = None, limit: int = 10,
                     with_payload: bool = True, exact: bool = False) -> Any:
        params = E.SearchParams(hnsw_ef=self.hnsw_ef, exact=exact)
        request = E.QueryRequest(
            limit=limit, query=_query(query, using), filter=to_filter(query_filter),
            prefetches=[E.Prefetch(p.limit or 10, query=_query(p.query, p.using),
                                   filter=to_filter(p.filter), params=params)
                        for p in prefetch or []] or None,
            params=None if prefetch else params, with_payload=with_payload)
        return SimpleNamespace(points=self._col(name).shard.query(request))

    def close(self) -> None:
        self._closed = True
        for child in list(self._children):
            child.kill()
        with self._builder:  # a build in flight notices and gives up
            pass
        for col in list(self._cols.values()):
            with col.lock:
                col.shard.close()
        self._cols.clear()
        self._opener.shutdown()

    # --- the index, built out of process -----------------------------------------------

    def indexing(self, name: str) -> bool:
        """Whether an index build of the collection is under way (or due)."""
        col = self._col(name)
        return col.building or col.pending >= self.index_threshold

    def _maybe_index(self, col: Collection) -> None:
        if col.pending < self.index_threshold or col.building or self._closed or \
                time.monotonic() < col.retry_at:
            return
        col.building = True
        threading.Thread(target=self._index, args=(col,), name="rag-edge-index",
                         daemon=True).start()

    def _index(self, col: Collection) -> None:
        try:
            with self._builder:
                while not self._closed and not col.deleted and \
                        col.pending >= self.index_threshold:
                    if not self._build(col):
                        break
        except Exception:
            log.exception("index build of %s failed; searches stay exact", col.folder.name)
        finally:
            col.building = False

    def _build(self, col: Collection) -> bool:
        started = time.monotonic()
        with col.lock:  # writes wait while the child copies; searches do not
            if col.deleted or self._closed:
                return False
            src = col.folder / col.gen
            dst_gen = f"gen-{int(col.gen.split('-')[1]) + 1}"
            dst = col.folder / dst_gen
            shutil.rmtree(dst, ignore_errors=True)
            col.shard.flush()
            child = subprocess.Popen([sys.executable, "-m", "rag.edge", str(src), str(dst)],
                                     stdout=subprocess.PIPE, text=True)
            self._children.add(child)
            copied = child.stdout.readline().strip() == "copied"  # type: ignore[union-attr]
            col.journal = []
            before, col.pending = col.pending, 0
        try:
            child.stdout.read()  # type: ignore[union-attr]
            ok = child.wait() == 0 and copied and not self._closed and not col.deleted
        finally:
            self._children.discard(child)
        if not ok:
            with col.lock:
                col.pending += before
                col.journal = None
                col.retry_at = time.monotonic() + 60
            shutil.rmtree(dst, ignore_errors=True)
            log.warning("index build of %s failed (exit %s)", col.folder.name, child.returncode)
            return False
        built = self._load(dst)  # holds the GIL for a moment (~0.5 s at 100k)
        with col.lock:
            if col.deleted:
                built.close()
                return False
            for op in col.journal or []:
                built.update(op)
            built.flush()
            col.meta["indexed"] = built.info().points_count - col.pending
            _write_atomic(col.folder / "meta.json", json.dumps(col.meta))
            _write_atomic(col.folder / "CURRENT", dst_gen)
            old, col.shard, col.gen, col.journal = col.shard, built, dst_gen, None
        # A search that picked up the old shard just before the switch finishes first.
        time.sleep(0.5)
        old.close()
        shutil.rmtree(src, ignore_errors=True)
        log.info("index of %s built in %.1f s (%d points)", col.folder.name,
                 time.monotonic() - started, built.info().points_count)
        return True


def create(path: str, spec: dict[str, Any]) -> None:
    """The child's side of create_collection: the shard and its payload indexes."""
    shard = E.EdgeShard.create(path, E.EdgeConfig(
        vectors={k: E.EdgeVectorParams(size=v, distance=E.Distance.Cosine)
                 for k, v in spec["dense"].items()},
        sparse_vectors={k: E.EdgeSparseVectorParams(modifier=E.Modifier.Idf if idf else None)
                        for k, idf in spec["idf"].items()},
        hnsw_config=E.HnswIndexConfig(m=16, ef_construct=100, full_scan_threshold=10000,
                                      max_indexing_threads=spec["threads"])))
    for field, kind in spec["indexes"].items():
        shard.update(E.UpdateOperation.create_field_index(field, getattr(E.PayloadSchemaType,
                                                                         kind)))
    shard.flush()
    shard.close()


def build(src: str, dst: str) -> None:
    """The child's side: copy the flushed shard, then build its index at low priority."""
    os.nice(19)
    shutil.copytree(src, dst)
    sys.stdout.write("copied\n")  # the parent resumes writes on this line
    sys.stdout.flush()
    shard = E.EdgeShard.load(dst)
    shard.optimize()
    shard.flush()
    shard.close()


if __name__ == "__main__":
    if sys.argv[1] == "create":
        create(sys.argv[2], json.loads(sys.argv[3]))
    else:
        build(sys.argv[1], sys.argv[2])


def migrate_local(local: Path, client: EdgeClient,
                  index_fields: Callable[[str], None] = lambda name: None) -> int:
    """Copy the collections of a qdrant-client local-mode store (rag before the edge store)
    into the edge store, then rename its folder `qdrant.migrated`; returns points copied.

    Re-run from the start after a crash: the local folder is renamed only at the end, and
    collections of the same name in the edge store are dropped before each copy.
    """
    from qdrant_client import QdrantClient

    source = QdrantClient(path=str(local))
    copied = 0
    try:
        for col in source.get_collections().collections:
            name = col.name
            config = source.get_collection(name).config
            if client.collection_exists(name):
                client.delete_collection(name)
            client.create_collection(name, vectors_config=config.params.vectors,
                                     sparse_vectors_config=config.params.sparse_vectors,
                                     metadata=config.metadata)
            index_fields(name)
            offset = None
            while True:
                points, offset = source.scroll(name, limit=256, offset=offset,
                                               with_payload=True, with_vectors=True)
                client.upsert(name, [qm.PointStruct(id=p.id, vector=p.vector or {},
                                                    payload=p.payload) for p in points])
                copied += len(points)
                if offset is None:
                    break
            log.warning("migrated collection %s from the local-mode store", name)
    finally:
        source.close()
    os.replace(local, local.with_name(local.name + ".migrated"))
    return copied
