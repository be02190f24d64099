"""Documents of a collection: upload (sync or as a job), list, delete."""

from __future__ import annotations

import asyncio
import re
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
DOC_ID = re.compile(r"^[0-9a-f]{1,64}$")


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
    job = jobs.admit()
    try:
        uploads = [(f.filename, await f.read()) for f in files]
    except BaseException:
        jobs.release()
        raise
    counter = request.app.state.ingested
    if background:
        jobs.spawn(run_job(ingestor, jobs, name, uploads, job, counter))
        return JSONResponse({"job": job.as_dict()}, status_code=202)
    documents = await ingest(ingestor, jobs, name, uploads, job, counter)
    return JSONResponse({"documents": documents})


@router.get("")
async def list_documents(name: str, store: StoreDep) -> dict[str, Any]:
    """The collection's complete documents: id, name, chunks, bytes, uploaded_at."""
    return {"data": await asyncio.to_thread(store.documents, name)}


@router.delete("/{document_id}")
async def delete_document(name: str, document_id: str, store: StoreDep) -> dict[str, Any]:
    """Remove a document and every chunk of it; 404 if it is not there."""
    if not DOC_ID.match(document_id):
        if not await asyncio.to_thread(store.exists, name):
            raise APIError(404, f"Collection '{name}' does not exist.",
                           code="collection_not_found", param="collection")
        raise APIError(404, f"Document '{document_id[:80]}' is not in collection '{name}'.",
                       code="document_not_found", param="document_id")
    await asyncio.to_thread(store.delete_document, name, document_id)
    return {"id": document_id, "deleted": True}
