"""Helpers of the rag tests: settings, readiness, uploads, envelope checks."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient

from rag.config import Settings

ONNX_CACHE = Path(tempfile.gettempdir()) / "tinyllm-test-onnx"


def make_settings(data_dir: Path, **kw: object) -> Settings:
    defaults = {"data_dir": data_dir, "qdrant_url": None, "api_key": None,
                "max_upload_bytes": 3_000_000, "max_docx_unzipped_bytes": 5_000_000,
                "max_pdf_pages": 50, "onnx_cache_dir": ONNX_CACHE,
                # Ingest at normal priority here: these tests share a busy machine and do not
                # measure search under load (test_limits does, with the default).
                "ingest_nice": 0,
                # One model per app is enough here; test_limits and test_process run real
                # processes with the default, the child encoder.
                "ingest_process": False}
    return Settings(**{**defaults, **kw})


def wait_ready(client: TestClient, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while client.get("/health").status_code != 200:
        assert time.monotonic() < deadline, client.get("/health").json()
        time.sleep(0.05)


def upload(client: Any, collection: str, *files: tuple[str, bytes], **params: Any) -> Any:
    return client.post(f"/collections/{collection}/documents", params=params,
                       files=[("files", (name, data, "application/octet-stream"))
                              for name, data in files])


def assert_error(response: Any, status: int, code: str, type_: str | None = None) -> dict:
    assert response.status_code == status, response.text
    err = response.json()["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert err["code"] == code, err
    if type_:
        assert err["type"] == type_, err
    return err
