"""The ingest pipeline: extract, chunk, embed in batches, write points, then mark complete."""

from __future__ import annotations

import hashlib
import logging
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from .chunking import Chunk, chunk_text
from .config import Settings
from .embedder import Embedder
from .extract import display_name, extract
from .store import Store

log = logging.getLogger(__name__)

# Fixed namespace so the same document bytes always map to the same point ids.
POINT_NS = uuid.UUID("6f1c1d2e-5b8a-4c4e-9a63-2b1f0c7d9e11")


@dataclass
class Prepared:
    """One upload, extracted and chunked, not yet written."""

    name: str
    doc_id: str
    content_hash: str
    size: int
    kind: str
    chunks: list[Chunk]


def document_id(name: str) -> str:
    """A document is its name within a collection: re-uploading a name replaces it."""
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def point_id(doc_id: str, content_hash: str, index: int) -> str:
    return str(uuid.uuid5(POINT_NS, f"{doc_id}:{content_hash}:{index}"))


class Ingestor:
    """Turns uploads into complete documents in a collection (blocking: run in a thread)."""

    def __init__(self, settings: Settings, embedder: Embedder, store: Store) -> None:
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.group = settings.write_batch
        self.chunk_tokens = min(settings.chunk_tokens, embedder.max_chunk_tokens)
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="rag-upsert")

    def close(self) -> None:
        self._writer.shutdown(wait=True)

    def prepare(self, filename: str | None, data: bytes) -> Prepared:
        """Extract and chunk one upload; raises APIError 413/415/422 for bad documents."""
        name = display_name(filename)
        extracted = extract(data, name, self.settings)
        chunks = chunk_text(extracted.text, self.embedder.tokenizer, self.chunk_tokens,
                            self.settings.chunk_overlap, extracted.page_starts)
        return Prepared(name, document_id(name), hashlib.sha256(data).hexdigest(), len(data),
                        extracted.kind, chunks)

    def ensure_collection(self, collection: str) -> None:
        """Create the collection for this embedder if missing; 409 if built by another."""
        self.store.create(collection, self.embedder.name, self.embedder.dim)

    def _lock_for(self, collection: str, doc_id: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault((collection, doc_id), threading.Lock())

    def write(self, collection: str, doc: Prepared,
              progress: Callable[[int], None] = lambda n: None) -> dict:
        """Write one document's points, then flip them complete and drop older versions.

        Args:
            collection: an existing, compatible collection.
            doc: the prepared upload.
            progress: called with the number of chunks just written.
        """
        with self._lock_for(collection, doc.doc_id):
            n = len(doc.chunks)
            if self.store.count_version(collection, doc.doc_id, doc.content_hash, True) == n:
                self.store.drop_other_versions(collection, doc.doc_id, doc.content_hash)
                progress(n)
                return self._row(doc, "unchanged")
            replacing = (self.store.count_document(collection, doc.doc_id)
                         > self.store.count_version(collection, doc.doc_id, doc.content_hash))
            self.store.begin_write(collection)
            clean = False
            try:
                self._write_points(collection, doc, progress)
                self.store.mark_complete(collection, doc.doc_id, doc.content_hash)
                clean = True
            except BaseException:
                # Leave nothing half-written behind; the old version stays searchable.
                try:
                    self.store.drop_version(collection, doc.doc_id, doc.content_hash)
                    clean = True
                except Exception:
                    log.exception("could not remove the partial points of %s", doc.name)
                raise
            finally:
                self.store.end_write(collection, clean)
            self.store.drop_other_versions(collection, doc.doc_id, doc.content_hash)
            status = "replaced" if replacing else "added"
            log.info("ingested %s into %s: %d chunks (%s)", doc.name, collection, n, status)
            return self._row(doc, status)

    def _write_points(self, collection: str, doc: Prepared,
                      progress: Callable[[int], None]) -> None:
        now = time.time()
        base = {"doc_id": doc.doc_id, "document": doc.name, "content_hash": doc.content_hash,
                "chunks": len(doc.chunks), "bytes": doc.size, "kind": doc.kind,
                "uploaded_ts": now, "complete": False,
                "uploaded_at": datetime.fromtimestamp(now, timezone.utc).isoformat()}
        pending: Future | None = None
        try:
            for first in range(0, len(doc.chunks), self.group):
                group = doc.chunks[first:first + self.group]
                vectors = self.embedder.encode([c.text for c in group])
                if pending is not None:
                    pending.result()
                ids = [point_id(doc.doc_id, doc.content_hash, c.index) for c in group]
                payloads = [{**base, "chunk_index": c.index, "page": c.page, "start": c.start,
                             "end": c.end, "text": c.text} for c in group]
                # Write this group while the next one is being encoded.
                pending = self._writer.submit(self._upsert, collection, ids, vectors, payloads,
                                              progress)
        finally:
            # Never return (or clean up after a failure) with a write still in flight.
            if pending is not None:
                wait([pending])
        if pending is not None:
            pending.result()

    def _upsert(self, collection: str, ids: list[str], vectors: Any, payloads: list[dict],
                progress: Callable[[int], None]) -> None:
        self.store.upsert(collection, ids, vectors, payloads)
        progress(len(ids))

    @staticmethod
    def _row(doc: Prepared, status: str) -> dict:
        return {"id": doc.doc_id, "name": doc.name, "chunks": len(doc.chunks),
                "bytes": doc.size, "status": status}
