"""Qdrant access, one code path for embedded (`path=`) and server (`url=`) mode.

Every point carries a dense vector (the embedder's), a sparse BM25-style vector (`sparse`,
with Qdrant's IDF modifier) and its document's payload. `replace_document` is the one
all-or-nothing unit: a new version's points are written with `complete` false, flipped
true only once all are written, and then older versions are dropped; searches only see
complete points.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Literal

from qdrant_client import QdrantClient
from qdrant_client.http import models as qm

from services.errors import APIError

from .config import Settings

log = logging.getLogger(__name__)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
KEYWORD_FIELDS = ("doc_id", "content_hash", "document")
INT_FIELDS = ("chunk_index", "page")
DENSE, SPARSE = "dense", "sparse"
SCHEMA = 2  # named dense + sparse vectors; collections of schema 1 must be rebuilt
Mode = Literal["dense", "sparse", "hybrid"]
PAYLOAD_INDEXES = {**{k: qm.PayloadSchemaType.KEYWORD for k in KEYWORD_FIELDS},
                   **{k: qm.PayloadSchemaType.INTEGER for k in INT_FIELDS},
                   "complete": qm.PayloadSchemaType.BOOL}
PREFETCH = 4
EMBEDDED_WRITE_STEP = 8  # each side of a hybrid search offers k * PREFETCH candidates (at least 20)


def _match(key: str, value: Any) -> qm.FieldCondition:
    if isinstance(value, list):
        return qm.FieldCondition(key=key, match=qm.MatchAny(any=value))
    return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))


def check_name(name: str, param: str = "collection") -> str:
    """A collection name as the API accepts it; 400 otherwise (checked on every route)."""
    if not NAME_RE.match(name):
        raise APIError(400, "Collection names are 1-64 letters, digits, '_' or '-', starting "
                            "with a letter or digit.", code="invalid_collection_name",
                       param=param)
    return name


@dataclass
class PointBatch:
    """Points of one document version, ready to write."""

    ids: list[str]
    dense: Any  # (n, dim) float32
    sparse: list[tuple[list[int], list[float]]]
    payloads: list[dict[str, Any]]


class Store:
    """The vector store of one rag app (on app.state.store)."""

    def __init__(self, settings: Settings) -> None:
        self.embedded = settings.qdrant_url is None
        # "edge" (qdrant-edge, HNSW), "local" (qdrant-client's local mode) or "server".
        self.engine = settings.embedded_engine if self.embedded else "server"
        self.client: Any
        if self.engine == "edge":
            from .edge import EdgeClient

            path = settings.data_dir / "edge"
            self.location = str(path)
            self.client = EdgeClient(path, settings.index_threshold, settings.hnsw_ef)
            local = settings.data_dir / "qdrant"
            if (local / "collection").is_dir():  # written by rag before the edge store
                from .edge import migrate_local

                log.warning("moved %d points from the local-mode store into %s",
                            migrate_local(local, self.client, self._index_fields), path)
        elif self.engine == "local":
            path = settings.data_dir / "qdrant"
            path.mkdir(parents=True, exist_ok=True)
            self.location = str(path)
            self.client = QdrantClient(path=self.location)
        else:
            self.location = str(settings.qdrant_url)
            self.client = QdrantClient(url=self.location, api_key=settings.qdrant_api_key,
                                       timeout=30)
        # qdrant-client's local mode is not built for concurrent writers from several
        # threads; the edge client locks each collection's writes itself (searches never
        # wait for an index build's copy step).
        self._lock: Any = (threading.RLock() if self.engine == "local"
                           else contextlib.nullcontext())
        # Embedded mode scans payload filters in Python (10x a search), so it skips the
        # `complete` filter unless this process has incomplete points in that collection.
        self._writing: Counter[str] = Counter()
        self._dirty: set[str] = set()
        self._doc_locks: dict[tuple[str, str], threading.Lock] = {}
        # Recorded model/size per collection, so a search does not count points to check it.
        # (A server shared by several replicas: a collection deleted and re-created elsewhere
        # with another model is caught by Qdrant's own vector size check.)
        self._meta_cache: dict[str, dict[str, Any]] = {}
        self._guard = threading.Lock()
        self.force_filter = False  # benchmarks: the filtered path of local mode
        # Writes a batch while the caller prepares the next; started here, at normal priority.
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="rag-upsert")
        self._writer.submit(lambda: None).result()

    @contextlib.contextmanager
    def locked(self) -> Iterator[QdrantClient]:
        with self._lock:
            yield self.client

    def close(self) -> None:
        self._writer.shutdown(wait=True)
        with self.locked() as c:
            c.close()

    def ping(self) -> bool:
        try:
            with self.locked() as c:
                c.get_collections()
            return True
        except Exception:  # any failure to reach the store means "down" for /health
            return False

    # --- collections -------------------------------------------------------------------

    def names(self) -> list[str]:
        with self.locked() as c:
            return sorted(col.name for col in c.get_collections().collections)

    def exists(self, name: str) -> bool:
        check_name(name)
        with self.locked() as c:
            return bool(c.collection_exists(name))

    def _missing(self, name: str) -> APIError:
        return APIError(404, f"Collection '{name}' does not exist.",
                        code="collection_not_found", param="collection")

    def info(self, name: str) -> dict[str, Any]:
        """name, embedding_model, vector_size, documents, points; 404 if absent."""
        check_name(name)
        with self.locked() as c:
            if not c.collection_exists(name):
                raise self._missing(name)
            described = _describe(c.get_collection(name))
            docs = c.count(name, count_filter=qm.Filter(must=[
                _match("chunk_index", 0), _match("complete", True)]), exact=True).count
            points = c.count(name, exact=True).count
        return {"name": name, **described, "documents": docs, "points": points}

    def create(self, name: str, model: str, dim: int) -> bool:
        """Create the collection recording its model; False if it already existed."""
        check_name(name)
        with self.locked() as c:
            if c.collection_exists(name):
                self.check_compatible(name, model, dim)
                return False
            extra = {"payload_indexes": PAYLOAD_INDEXES} if self.engine == "edge" else {}
            c.create_collection(
                name,
                vectors_config={DENSE: qm.VectorParams(size=dim, distance=qm.Distance.COSINE)},
                sparse_vectors_config={SPARSE: qm.SparseVectorParams(modifier=qm.Modifier.IDF)},
                metadata={"embedding_model": model, "vector_size": dim, "schema": SCHEMA},
                **extra)
            if self.engine == "server":  # local mode scans payloads in Python anyway
                self._index_fields(name)
        return True

    def _index_fields(self, name: str) -> None:
        for key, schema in PAYLOAD_INDEXES.items():
            self.client.create_payload_index(name, key, schema)

    def _meta(self, name: str) -> dict[str, Any]:
        """The collection's recorded model, size and schema; cached (no point counts)."""
        check_name(name)
        cached = self._meta_cache.get(name)
        if cached is not None:
            return cached
        with self.locked() as c:
            if not c.collection_exists(name):
                raise self._missing(name)
            info = _describe(c.get_collection(name))
        self._meta_cache[name] = info
        return info

    def check_compatible(self, name: str, model: str, dim: int) -> None:
        """Refuse (409) a collection built with another embedding model, size or layout."""
        info = self._meta(name)
        recorded = info["embedding_model"]
        if info["vector_size"] != dim or (recorded is not None and recorded != model):
            raise APIError(409, f"Collection '{name}' was built with embedding model "
                                f"'{recorded}' ({info['vector_size']} dims); this service "
                                f"embeds with '{model}' ({dim} dims).",
                           code="embedding_model_mismatch", param="collection")
        if info["schema"] != SCHEMA:
            raise APIError(409, f"Collection '{name}' was built by an older rag without "
                                "sparse vectors; delete it and upload its documents again.",
                           code="embedding_model_mismatch", param="collection")

    def delete(self, name: str) -> None:
        check_name(name)
        with self.locked() as c:
            self._meta_cache.pop(name, None)
            if not c.collection_exists(name):
                raise self._missing(name)
            c.delete_collection(name)

    # --- documents ---------------------------------------------------------------------

    def _count(self, name: str, must: list[Any], must_not: list[Any] | None = None) -> int:
        with self.locked() as c:
            return c.count(name, count_filter=qm.Filter(must=must, must_not=must_not),
                           exact=True).count

    def _delete(self, name: str, must: list[Any], must_not: list[Any] | None = None) -> None:
        selector = qm.FilterSelector(filter=qm.Filter(must=must, must_not=must_not))
        with self.locked() as c:
            c.delete(name, points_selector=selector, wait=True)

    def _doc_lock(self, name: str, doc_id: str) -> threading.Lock:
        with self._guard:
            return self._doc_locks.setdefault((name, doc_id), threading.Lock())

    def replace_document(self, name: str, doc_id: str, content_hash: str, chunks: int,
                         batches: Callable[[], Iterable[PointBatch]],
                         progress: Callable[[int], None] = lambda n: None) -> str:
        """Make (doc_id, content_hash) the document's only version, all or nothing.

        Args:
            name: an existing, compatible collection.
            doc_id, content_hash: the document and the version being written.
            chunks: how many points the version has.
            batches: called only if the version is not already there; yields its points
                (the caller embeds lazily, so writing one batch overlaps making the next).
            progress: called with the number of points just written.

        Returns:
            "unchanged" (the same version was already complete), "added" or "replaced".
        """
        same = [_match("doc_id", doc_id), _match("content_hash", content_hash)]
        with self._doc_lock(name, doc_id):
            if self._count(name, [*same, _match("complete", True)]) == chunks:
                self._delete(name, [_match("doc_id", doc_id)],
                             [_match("content_hash", content_hash)])
                progress(chunks)
                return "unchanged"
            replacing = self._count(name, [_match("doc_id", doc_id)],
                                    [_match("content_hash", content_hash)]) > 0
            with self.locked():
                self._writing[name] += 1
            clean = False
            try:
                self._write_all(name, batches(), progress)
                with self.locked() as c:
                    c.set_payload(name, payload={"complete": True},
                                  points=qm.Filter(must=same), wait=True)
                clean = True
            except BaseException:
                # Leave nothing half-written behind; the old version stays searchable.
                try:
                    self._delete(name, [*same, _match("complete", False)])
                    clean = True
                except Exception:
                    log.exception("could not remove the partial points of %s", doc_id)
                raise
            finally:
                with self.locked():
                    self._writing[name] -= 1
                    if not clean:
                        self._dirty.add(name)
            self._delete(name, [_match("doc_id", doc_id)], [_match("content_hash", content_hash)])
            return "replaced" if replacing else "added"

    def _write_all(self, name: str, batches: Iterable[PointBatch],
                   progress: Callable[[int], None]) -> None:
        pending: Future | None = None
        try:
            for batch in batches:
                if pending is not None:
                    pending.result()
                pending = self._writer.submit(self.upsert, name, batch)
                pending.add_done_callback(lambda f, n=len(batch.ids): f.exception() is None  # noqa: B008
                                          and progress(n))
        finally:
            # Never return (or clean up after a failure) with a write still in flight.
            if pending is not None:
                wait([pending])
        if pending is not None:
            pending.result()

    def upsert(self, name: str, batch: PointBatch) -> None:
        points = [qm.PointStruct(id=i, payload=p, vector={
                      DENSE: d.tolist(), SPARSE: qm.SparseVector(indices=s[0], values=s[1])})
                  for i, d, s, p in zip(batch.ids, batch.dense, batch.sparse, batch.payloads,
                                        strict=True)]
        # Embedded mode writes in small steps, letting a waiting search take the lock between
        # them instead of queueing behind a whole batch.
        step = EMBEDDED_WRITE_STEP if self.embedded else len(points)
        for first in range(0, len(points), step):
            with self.locked() as c:
                c.upsert(name, points=points[first:first + step], wait=True)
            time.sleep(0)

    def cleanup_incomplete(self, older_than_s: float | None) -> int:
        """Delete points of ingests that never completed (a crash); returns how many."""
        removed = 0
        for name in self.names():
            must: list[Any] = [_match("complete", False)]
            if older_than_s is not None:
                must.append(qm.FieldCondition(key="uploaded_ts",
                                              range=qm.Range(lt=time.time() - older_than_s)))
            n = self._count(name, must)
            if n:
                self._delete(name, must)
            removed += n
        return removed

    def documents(self, name: str) -> list[dict[str, Any]]:
        """The complete documents of a collection, from each one's first chunk."""
        self.info(name)
        selector = qm.Filter(must=[_match("chunk_index", 0), _match("complete", True)])
        docs: list[dict[str, Any]] = []
        offset: Any = None
        with self.locked() as c:
            while True:
                points, offset = c.scroll(name, scroll_filter=selector, limit=256, offset=offset,
                                          with_payload=True, with_vectors=False)
                docs.extend(document_row(p.payload or {}) for p in points)
                if offset is None:
                    break
        return sorted(docs, key=lambda d: (d["uploaded_at"] or "", d["name"] or ""))

    def delete_document(self, name: str, doc_id: str) -> None:
        self.info(name)
        with self._doc_lock(name, doc_id):
            if not self._count(name, [_match("doc_id", doc_id)]):
                raise APIError(404, f"Document '{doc_id}' is not in collection '{name}'.",
                               code="document_not_found", param="document_id")
            self._delete(name, [_match("doc_id", doc_id)])

    # --- search ------------------------------------------------------------------------

    def search(self, name: str, dense: list[float] | None,
               sparse: tuple[list[int], list[float]] | None, k: int,
               conditions: list[Any]) -> list[dict[str, Any]]:
        """The k best complete chunks: dense, sparse, or both fused by reciprocal rank."""
        from qdrant_client.http.exceptions import UnexpectedResponse

        try:
            return self._search(name, dense, sparse, k, conditions)
        except UnexpectedResponse as exc:
            if exc.status_code == 404:  # deleted elsewhere (a server shared by replicas)
                self._meta_cache.pop(name, None)
                raise self._missing(name) from exc
            raise

    def _search(self, name: str, dense: list[float] | None,
                sparse: tuple[list[int], list[float]] | None, k: int,
                conditions: list[Any]) -> list[dict[str, Any]]:
        with self.locked() as c:
            # Checked under the lock, so no write can slip in between the check and the query.
            # Only local mode takes the shortcut: the engines with payload indexes filter
            # on `complete` at almost no cost, and have no such lock.
            strict = (self.engine != "local" or self._writing[name] > 0
                      or name in self._dirty or self.force_filter)
            must = [_match("complete", True)] if strict else []
            flt = qm.Filter(must=[*must, *conditions]) if must or conditions else None
            sparse_q = qm.SparseVector(indices=sparse[0], values=sparse[1]) if sparse else None
            if dense is not None and sparse_q is not None:
                depth = max(20, k * PREFETCH)
                hits = c.query_points(
                    name, prefetch=[qm.Prefetch(query=dense, using=DENSE, limit=depth,
                                                filter=flt),
                                    qm.Prefetch(query=sparse_q, using=SPARSE, limit=depth,
                                                filter=flt)],
                    query=qm.FusionQuery(fusion=qm.Fusion.RRF), query_filter=flt, limit=k,
                    with_payload=True).points
            elif sparse_q is not None:
                if not sparse_q.indices:
                    return []
                hits = c.query_points(name, query=sparse_q, using=SPARSE, query_filter=flt,
                                      limit=k, with_payload=True).points
            else:
                hits = c.query_points(name, query=dense, using=DENSE, query_filter=flt,
                                      limit=k, with_payload=True).points
        return [hit_row(name, h.score, h.payload or {}) for h in hits]


def document_row(p: dict[str, Any]) -> dict[str, Any]:
    return {"id": p.get("doc_id"), "name": p.get("document"), "chunks": p.get("chunks"),
            "bytes": p.get("bytes"), "uploaded_at": p.get("uploaded_at"),
            "title": p.get("title")}


def hit_row(collection: str, score: float, p: dict[str, Any]) -> dict[str, Any]:
    return {"score": float(score), "collection": collection, "document_id": p.get("doc_id"),
            "document": p.get("document"), "title": p.get("title"),
            "section": p.get("section"), "page": p.get("page"), "start": p.get("start"),
            "end": p.get("end"), "chunk_index": p.get("chunk_index"), "text": p.get("text")}


def filter_conditions(spec: Any) -> list[Any]:
    """Qdrant conditions of a validated `SearchFilter` (see the search route)."""
    conditions: list[Any] = []
    if spec is None:
        return conditions
    if spec.document is not None:
        conditions.append(_match("document", spec.document))
    if spec.document_id is not None:
        conditions.append(_match("doc_id", spec.document_id))
    if isinstance(spec.page, int):
        conditions.append(_match("page", spec.page))
    elif spec.page is not None:
        conditions.append(qm.FieldCondition(key="page", range=qm.Range(
            gte=spec.page.gte, lte=spec.page.lte)))
    return conditions


def _describe(col: Any) -> dict[str, Any]:
    """A collection's recorded embedding model, vector size and schema, from its config."""
    meta = col.config.metadata or {}
    vectors = col.config.params.vectors
    dense = vectors.get(DENSE) if isinstance(vectors, dict) else vectors
    return {"embedding_model": meta.get("embedding_model"),
            "vector_size": getattr(dense, "size", None) or meta.get("vector_size"),
            "schema": meta.get("schema", 1)}
