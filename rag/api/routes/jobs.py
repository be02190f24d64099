"""GET /jobs/{id}: the state of a background upload."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends

from services.auth import require_api_key

from ..deps import JobsDep

router = APIRouter(prefix="/jobs", tags=["jobs"], dependencies=[Depends(require_api_key)])


@router.get("/{job_id}")
async def get_job(job_id: str, jobs: JobsDep) -> dict[str, Any]:
    """Status, progress (0..1), documents written and error of one upload job."""
    return jobs.get(job_id).as_dict()
