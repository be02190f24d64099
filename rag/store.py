"""Qdrant access, one code path for embedded (`path=`) and server (`url=`) mode.

Every point carries its document's payload; `complete` flips to true only after all of a
document's points are written, and searches only see complete points (all-or-nothing).
"""

from __future__ import annotations

import contextlib
import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

from qdrant_client import QdrantClient
from qdrant_client.http import models as qm

from services.errors import APIError

from .config import Settings

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
KEYWORD_FIELDS = ("doc_id", "content_hash", "document")
INT_FIELDS = ("chunk_index", "page")


def _match(key: str, value: Any) -> qm.FieldCondition:
    if isinstance(value, list):
        return qm.FieldCondition(key=key, match=qm.MatchAny(any=value))
    return qm.FieldCondition(key=key, match=qm.MatchValue(value=value))


def check_name(name: str) -> str:
    if not NAME_RE.match(name):
        raise APIError(400, "Collection names are 1-64 letters, digits, '_' or '-', starting "
                            "with a letter or digit.", code="invalid_collection_name",
                       param="name")
    return name


class Store:
    """The vector store of one rag app (on app.state.store)."""

    def __init__(self, settings: Settings) -> None:
        self.embedded = settings.qdrant_url is None
        if self.embedded:
            path = settings.data_dir / "qdrant"
            path.mkdir(parents=True, exist_ok=True)
            self.location = str(path)
            self.client = QdrantClient(path=self.location)
        else:
            self.location = str(settings.qdrant_url)
            self.client = QdrantClient(url=self.location, api_key=settings.qdrant_api_key,
                                       timeout=30)
        # The embedded engine is not built for concurrent writers from several threads.
        self._lock: Any = threading.RLock() if self.embedded else contextlib.nullcontext()
        # Embedded mode scans payload filters in Python (10x a search), so it skips the
        # `complete` filter unless this process has incomplete points in that collection.
        self._writing: Counter[str] = Counter()
        self._dirty: set[str] = set()

    @contextlib.contextmanager
    def locked(self) -> Iterator[QdrantClient]:
        with self._lock:
            yield self.client

    def close(self) -> None:
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
        with self.locked() as c:
            return bool(c.collection_exists(name))

    def info(self, name: str) -> dict[str, Any]:
        """name, embedding_model, vector_size, documents, points; 404 if absent."""
        with self.locked() as c:
            if not c.collection_exists(name):
                raise APIError(404, f"Collection '{name}' does not exist.",
                               code="collection_not_found", param="collection")
            col = c.get_collection(name)
            meta = col.config.metadata or {}
            vectors = col.config.params.vectors
            size = getattr(vectors, "size", None) or meta.get("vector_size")
            docs = c.count(name, count_filter=qm.Filter(must=[
                _match("chunk_index", 0), _match("complete", True)]), exact=True).count
            points = c.count(name, exact=True).count
        return {"name": name, "embedding_model": meta.get("embedding_model"),
                "vector_size": size, "documents": docs, "points": points}

    def create(self, name: str, model: str, dim: int) -> bool:
        """Create the collection recording its model; False if it already existed."""
        check_name(name)
        with self.locked() as c:
            if c.collection_exists(name):
                self.check_compatible(name, model, dim)
                return False
            c.create_collection(
                name, vectors_config=qm.VectorParams(size=dim, distance=qm.Distance.COSINE),
                metadata={"embedding_model": model, "vector_size": dim},
            )
            if not self.embedded:
                for key in KEYWORD_FIELDS:
                    c.create_payload_index(name, key, qm.PayloadSchemaType.KEYWORD)
                for key in INT_FIELDS:
                    c.create_payload_index(name, key, qm.PayloadSchemaType.INTEGER)
                c.create_payload_index(name, "complete", qm.PayloadSchemaType.BOOL)
        return True

    def check_compatible(self, name: str, model: str, dim: int) -> None:
        """Refuse (409) a collection built with another embedding model or vector size."""
        info = self.info(name)
        recorded = info["embedding_model"]
        if info["vector_size"] != dim or (recorded is not None and recorded != model):
            raise APIError(409, f"Collection '{name}' was built with embedding model "
                                f"'{recorded}' ({info['vector_size']} dims); this service "
                                f"embeds with '{model}' ({dim} dims).",
                           code="embedding_model_mismatch", param="collection")

    def delete(self, name: str) -> None:
        with self.locked() as c:
            if not c.collection_exists(name):
                raise APIError(404, f"Collection '{name}' does not exist.",
                               code="collection_not_found", param="collection")
            c.delete_collection(name)

    # --- points ------------------------------------------------------------------------

    def count_version(self, name: str, doc_id: str, content_hash: str,
                      complete: bool | None = None) -> int:
        must = [_match("doc_id", doc_id), _match("content_hash", content_hash)]
        if complete is not None:
            must.append(_match("complete", complete))
        with self.locked() as c:
            return c.count(name, count_filter=qm.Filter(must=must), exact=True).count

    def count_document(self, name: str, doc_id: str) -> int:
        with self.locked() as c:
            return c.count(name, count_filter=qm.Filter(must=[_match("doc_id", doc_id)]),
                           exact=True).count

    def upsert(self, name: str, ids: list[str], vectors: Any, payloads: list[dict]) -> None:
        points = [qm.PointStruct(id=i, vector=v.tolist(), payload=p)
                  for i, v, p in zip(ids, vectors, payloads, strict=False)]
        with self.locked() as c:
            c.upsert(name, points=points, wait=True)

    def mark_complete(self, name: str, doc_id: str, content_hash: str) -> None:
        selector = qm.Filter(must=[_match("doc_id", doc_id), _match("content_hash", content_hash)])
        with self.locked() as c:
            c.set_payload(name, payload={"complete": True}, points=selector, wait=True)

    def drop_other_versions(self, name: str, doc_id: str, content_hash: str) -> None:
        selector = qm.Filter(must=[_match("doc_id", doc_id)],
                             must_not=[_match("content_hash", content_hash)])
        with self.locked() as c:
            c.delete(name, points_selector=qm.FilterSelector(filter=selector), wait=True)

    def drop_version(self, name: str, doc_id: str, content_hash: str) -> None:
        selector = qm.Filter(must=[_match("doc_id", doc_id), _match("content_hash", content_hash),
                                   _match("complete", False)])
        with self.locked() as c:
            c.delete(name, points_selector=qm.FilterSelector(filter=selector), wait=True)

    def cleanup_incomplete(self, older_than_s: float | None) -> int:
        """Delete points of ingests that never completed (a crash); returns how many."""
        removed = 0
        for name in self.names():
            must: list[Any] = [_match("complete", False)]
            if older_than_s is not None:
                must.append(qm.FieldCondition(key="uploaded_ts",
                                              range=qm.Range(lt=time.time() - older_than_s)))
            selector = qm.Filter(must=must)
            with self.locked() as c:
                n = c.count(name, count_filter=selector, exact=True).count
                if n:
                    c.delete(name, points_selector=qm.FilterSelector(filter=selector), wait=True)
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
        selector = qm.Filter(must=[_match("doc_id", doc_id)])
        with self.locked() as c:
            if not c.count(name, count_filter=selector, exact=True).count:
                raise APIError(404, f"Document '{doc_id}' is not in collection '{name}'.",
                               code="document_not_found", param="document_id")
            c.delete(name, points_selector=qm.FilterSelector(filter=selector), wait=True)

    def begin_write(self, name: str) -> None:
        """Note that incomplete points may appear in `name` until `end_write`."""
        with self.locked():
            self._writing[name] += 1

    def end_write(self, name: str, clean: bool) -> None:
        """The write is over; `clean` False means incomplete points may have been left."""
        with self.locked():
            self._writing[name] -= 1
            if not clean:
                self._dirty.add(name)

    def search(self, name: str, vector: list[float], k: int,
               conditions: list[Any]) -> list[dict[str, Any]]:
        with self.locked() as c:
            # Checked under the lock, so no write can slip in between the check and the query.
            strict = not self.embedded or self._writing[name] > 0 or name in self._dirty
            must = [_match("complete", True)] if strict else []
            query_filter = qm.Filter(must=[*must, *conditions]) if must or conditions else None
            hits = c.query_points(name, query=vector, query_filter=query_filter, limit=k,
                                  with_payload=True).points
        return [hit_row(name, h.score, h.payload or {}) for h in hits]


def document_row(p: dict[str, Any]) -> dict[str, Any]:
    return {"id": p.get("doc_id"), "name": p.get("document"), "chunks": p.get("chunks"),
            "bytes": p.get("bytes"), "uploaded_at": p.get("uploaded_at")}


def hit_row(collection: str, score: float, p: dict[str, Any]) -> dict[str, Any]:
    return {"score": float(score), "collection": collection, "document_id": p.get("doc_id"),
            "document": p.get("document"), "page": p.get("page"), "start": p.get("start"),
            "end": p.get("end"), "chunk_index": p.get("chunk_index"), "text": p.get("text")}


def filter_conditions(spec: dict[str, Any] | None) -> list[Any]:
    """Turn the search body's `filter` into Qdrant conditions.

    Keys: `document` (name or list of names), `document_id` (id or list), `page`
    (an int, or {"gte": int, "lte": int}). Anything else answers 400.
    """
    conditions: list[Any] = []
    for key, value in (spec or {}).items():
        if key in ("document", "document_id") and (
                isinstance(value, str) or (isinstance(value, list) and value
                                           and all(isinstance(v, str) for v in value))):
            conditions.append(_match("doc_id" if key == "document_id" else "document", value))
        elif key == "page" and isinstance(value, int) and not isinstance(value, bool):
            conditions.append(_match("page", value))
        elif key == "page" and isinstance(value, dict) and value and set(value) <= {"gte", "lte"} \
                and all(isinstance(v, int) and not isinstance(v, bool) for v in value.values()):
            conditions.append(qm.FieldCondition(key="page", range=qm.Range(**value)))
        else:
            raise APIError(400, f"Unsupported filter '{key}': use document, document_id or "
                                "page.", code="invalid_filter", param=f"filter.{key}")
    return conditions
