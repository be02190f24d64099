"""The documents page's API: collections and documents, proxied to the rag service."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.errors import APIError

from ..deps import RagDep
from .attachments import is_private

router = APIRouter(prefix="/api", tags=["documents"])


class CollectionIn(BaseModel):
    name: str = Field(..., min_length=1, max_length=200)


def _seg(value: str) -> str:
    """A path segment for rag: percent-encoded, so '/', '?', '#' or '%' stay in the name."""
    if not value or value in (".", ".."):
        raise APIError(400, "Invalid name.", code="invalid_value")
    return quote(value, safe="")


@router.get("/collections")
async def list_collections(rag: RagDep) -> Any:
    """rag's collections (not those of single conversations' attached files)."""
    body = await rag.call("GET", "/collections")
    body["data"] = [c for c in body.get("data", []) if not is_private(c.get("name"))]
    return body


@router.post("/collections")
async def create_collection(body: CollectionIn, rag: RagDep) -> Any:
    """Create a collection."""
    return await rag.call("POST", "/collections", json={"name": body.name})


@router.delete("/collections/{name}")
async def delete_collection(name: str, rag: RagDep) -> Any:
    """Delete a collection and its documents."""
    return await rag.call("DELETE", f"/collections/{_seg(name)}")


@router.get("/collections/{name}/documents")
async def list_documents(name: str, rag: RagDep) -> Any:
    """Documents of a collection (name, chunks, size, uploaded at)."""
    return await rag.call("GET", f"/collections/{_seg(name)}/documents")


@router.post("/collections/{name}/documents")
async def upload(name: str, request: Request, rag: RagDep) -> JSONResponse:
    """Stream a multipart upload to rag as a background job (202 with the job to poll)."""
    content_type = request.headers.get("content-type", "")
    if not content_type.startswith("multipart/form-data"):
        raise APIError(415, "Send the files as multipart/form-data (field 'files').",
                       code="unsupported_media_type")
    response = await rag.forward_upload(f"/collections/{_seg(name)}/documents",
                                        request.stream(), content_type,
                                        {"background": "true"})
    return JSONResponse(response.json(), status_code=response.status_code)


@router.get("/jobs/{job_id}")
async def job(job_id: str, rag: RagDep) -> Any:
    """Progress of an upload job."""
    return await rag.call("GET", f"/jobs/{_seg(job_id)}")


@router.delete("/collections/{name}/documents/{doc_id}")
async def delete_document(name: str, doc_id: str, rag: RagDep) -> Any:
    """Delete one document."""
    return await rag.call("DELETE", f"/collections/{_seg(name)}/documents/{_seg(doc_id)}")
