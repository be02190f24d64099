"""Documents of a collection: upload (sync or as a job), list, delete."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, File, Query, Request, UploadFile
from fastapi.responses import JSONResponse

from services.auth import require_api_key
from services.errors import APIError

from ...jobs import ingest, run_job
from ...store import check_name
from ..deps import EmbedderDep, IngestorDep, JobsDep, StoreDep

router = APIRouter(prefix="/collections/{name}/documents", tags=["documents"],
                   dependencies=[Depends(require_api_key)])
MAX_FILES = 100


@router.post("")
async def upload(
    name: str,
    request: Request,
    files: Annotated[list[UploadFile], File(description="One or several documents.")],
    store: StoreDep, embedder: EmbedderDep, ingestor: IngestorDep, jobs: JobsDep,
    background: Annotated[bool, Query(description="Answer 202 with a job at once.")] = False,
) -> JSONResponse:
    """Ingest documents into a collection (created if missing); same bytes add nothing."""
    if len(files) > MAX_FILES:
        raise APIError(400, f"At most {MAX_FILES} files per upload.", code="too_many_files",
                       param="files")
    check_name(name)
    if await asyncio.to_thread(store.exists, name):
        await asyncio.to_thread(store.check_compatible, name, embedder.name, embedder.dim)
    uploads = [(f.filename, await f.read()) for f in files]
    job = jobs.create()
    if background:
        jobs.spawn(run_job(ingestor, name, uploads, job, request.app.state.ingested))
        return JSONResponse({"job": job.as_dict()}, status_code=202)
    documents = await ingest(ingestor, name, uploads, job, request.app.state.ingested)
    return JSONResponse({"documents": documents})


@router.get("")
async def list_documents(name: str, store: StoreDep) -> dict[str, Any]:
    """The collection's complete documents: id, name, chunks, bytes, uploaded_at."""
    return {"data": await asyncio.to_thread(store.documents, name)}


@router.delete("/{document_id}")
async def delete_document(name: str, document_id: str, store: StoreDep) -> dict[str, Any]:
    """Remove a document and every chunk of it; 404 if it is not there."""
    await asyncio.to_thread(store.delete_document, name, document_id)
    return {"id": document_id, "deleted": True}
