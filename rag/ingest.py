"""The ingest pipeline: extract (sandboxed), chunk, embed in batches, replace the document.

All of it runs on the ingest executor: its own threads, niced, so searches and /health
keep the CPU and the default thread pool while uploads are processed.
"""

from __future__ import annotations

import hashlib
import logging
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from services.extract import Extracted, Limits, display_name
from services.sandbox import extract_bounded

from . import sparse
from .chunking import Chunk, chunk_text
from .config import Settings
from .embedder import Embedder
from .store import PointBatch, Store

log = logging.getLogger(__name__)

# Fixed namespace so the same document bytes always map to the same point ids.
POINT_NS = uuid.UUID("6f1c1d2e-5b8a-4c4e-9a63-2b1f0c7d9e11")
# Tokens kept for the "title > section" line prepended to each chunk for retrieval.
CONTEXT_TOKENS = 32


@dataclass
class Prepared:
    """One upload, extracted and chunked, not yet written."""

    name: str
    doc_id: str
    content_hash: str
    size: int
    kind: str
    title: str
    chunks: list[Chunk]
    sections: list[str]  # heading path of each chunk ("" where none)
    chars: int  # extracted characters, for the request's text budget


def document_id(name: str) -> str:
    """A document is its name within a collection: re-uploading a name replaces it."""
    return hashlib.sha256(name.encode()).hexdigest()[:16]


def point_id(doc_id: str, content_hash: str, index: int) -> str:
    return str(uuid.uuid5(POINT_NS, f"{doc_id}:{content_hash}:{index}"))


def limits_of(settings: Settings) -> Limits:
    return Limits(settings.max_pdf_pages, settings.max_extracted_chars,
                  settings.max_docx_unzipped_bytes, settings.extract_timeout_s)


def section_paths(headings: list[tuple[int, int, str]], starts: list[int]) -> list[str]:
    """The heading path ("A > B") in force at each offset of `starts`."""
    out: list[str] = []
    stack: list[tuple[int, str]] = []
    i = 0
    for start in starts:
        # A heading that opens the chunk (within its first characters) names it too.
        while i < len(headings) and headings[i][0] <= start + 40:
            _, level, text = headings[i]
            while stack and stack[-1][0] >= level:
                stack.pop()
            stack.append((level, text))
            i += 1
        out.append(" > ".join(t for _, t in stack))
    return out


def _nice_thread(nice: int) -> None:
    if nice and hasattr(os, "setpriority"):
        try:  # on Linux a thread id is a process id for setpriority: this thread only
            os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), nice)
        except OSError:
            log.warning("could not lower the ingest threads' priority")


class Ingestor:
    """Turns uploads into complete documents in a collection (blocking: on `executor`)."""

    def __init__(self, settings: Settings, embedder: Embedder, store: Store) -> None:
        self.settings = settings
        self.embedder = embedder
        self.store = store
        self.group = settings.write_batch
        self.limits = limits_of(settings)
        self.chunk_tokens = min(settings.chunk_tokens, embedder.max_chunk_tokens - CONTEXT_TOKENS)
        self.encoder: Any = embedder
        if settings.ingest_process:
            from .encode_worker import ProcessEncoder

            self.encoder = ProcessEncoder(embedder.init_args, settings.ingest_nice,
                                          settings.ingest_threads)
        self.executor = ThreadPoolExecutor(
            settings.max_jobs, thread_name_prefix="rag-ingest",
            initializer=_nice_thread, initargs=(settings.ingest_nice,))

    def close(self) -> None:
        self.executor.shutdown(wait=True)
        if self.encoder is not self.embedder:
            self.encoder.close()

    def prepare(self, filename: str | None, data: bytes) -> Prepared:
        """Extract and chunk one upload; raises APIError 413/415/422 for bad documents."""
        name = display_name(filename)
        extracted = extract_bounded(data, name, self.limits,
                                    self.settings.extract_memory_mb * 1024 * 1024)
        return self.chunk(name, data, extracted)

    def chunk(self, name: str, data: bytes, extracted: Extracted) -> Prepared:
        chunks = chunk_text(extracted.text, self.embedder.tokenizer, self.chunk_tokens,
                            self.settings.chunk_overlap, extracted.page_starts)
        heads = sorted(extracted.headings)
        sections = section_paths(heads, [c.start for c in chunks])
        title = extracted.title or (heads[0][2] if heads and heads[0][1] == 1 else "")
        return Prepared(name, document_id(name), hashlib.sha256(data).hexdigest(), len(data),
                        extracted.kind, title, chunks, sections, len(extracted.text))

    def ensure_collection(self, collection: str) -> None:
        """Create the collection for this embedder if missing; 409 if built by another."""
        self.store.create(collection, self.embedder.name, self.embedder.dim)

    def context(self, doc: Prepared, index: int) -> str:
        """The line that situates a chunk: document title and section path, token-bounded."""
        parts = [doc.title or doc.name]
        section = doc.sections[index]
        if section and section != doc.title:
            parts.append(section)
        line = " > ".join(parts)
        enc = self.embedder.tokenizer.encode(line, add_special_tokens=False)
        if len(enc.ids) > CONTEXT_TOKENS - 1:
            line = line[:enc.offsets[CONTEXT_TOKENS - 2][1]]
        return line

    def write(self, collection: str, doc: Prepared,
              progress: Callable[[int], None] = lambda n: None) -> dict:
        """Make this upload the document's only version (see `Store.replace_document`)."""
        status = self.store.replace_document(
            collection, doc.doc_id, doc.content_hash, len(doc.chunks),
            lambda: self._batches(doc), progress)
        if status != "unchanged":
            log.info("ingested %s into %s: %d chunks (%s)", doc.name, collection,
                     len(doc.chunks), status)
        return self._row(doc, status)

    def _batches(self, doc: Prepared) -> Iterator[PointBatch]:
        now = time.time()
        base = {"doc_id": doc.doc_id, "document": doc.name, "content_hash": doc.content_hash,
                "chunks": len(doc.chunks), "bytes": doc.size, "kind": doc.kind,
                "title": doc.title or None, "uploaded_ts": now, "complete": False,
                "uploaded_at": datetime.fromtimestamp(now, timezone.utc).isoformat()}
        for first in range(0, len(doc.chunks), self.group):
            group = doc.chunks[first:first + self.group]
            texts = [self.context(doc, c.index) + "\n" + c.text for c in group]
            dense = self.encoder.encode(texts)
            yield PointBatch(
                [point_id(doc.doc_id, doc.content_hash, c.index) for c in group], dense,
                [sparse.document_vector(t) for t in texts],
                [{**base, "chunk_index": c.index, "page": c.page, "start": c.start,
                  "end": c.end, "section": doc.sections[c.index] or None, "text": c.text}
                 for c in group])

    @staticmethod
    def _row(doc: Prepared, status: str) -> dict:
        return {"id": doc.doc_id, "name": doc.name, "chunks": len(doc.chunks),
                "bytes": doc.size, "status": status}
