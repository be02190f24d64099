"""Ingest runs: synchronous or as a background job with progress (GET /jobs/{id})."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from services.errors import APIError

from .ingest import Ingestor, Prepared

log = logging.getLogger(__name__)


@dataclass
class Job:
    id: str
    status: str = "queued"  # queued | running | done | failed
    total: int = 0
    done: int = 0
    documents: list[dict[str, Any]] = field(default_factory=list)
    error: dict[str, Any] | None = None
    created: float = field(default_factory=time.time)

    @property
    def progress(self) -> float:
        if self.status == "done":
            return 1.0
        return round(min(1.0, self.done / self.total), 4) if self.total else 0.0

    def add(self, n: int) -> None:
        self.done += n

    def as_dict(self) -> dict[str, Any]:
        return {"id": self.id, "status": self.status, "progress": self.progress,
                "documents": self.documents, "error": self.error}


class Jobs:
    """Jobs of this replica, newest kept; their tasks are held so they are not collected."""

    def __init__(self, max_jobs: int) -> None:
        self.max_jobs = max_jobs
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._tasks: set[asyncio.Task] = set()

    def create(self) -> Job:
        job = Job(uuid.uuid4().hex)
        self._jobs[job.id] = job
        while len(self._jobs) > self.max_jobs:
            self._jobs.popitem(last=False)
        return job

    def get(self, job_id: str) -> Job:
        job = self._jobs.get(job_id)
        if job is None:
            raise APIError(404, f"Job '{job_id}' does not exist.", code="job_not_found",
                           param="job_id")
        return job

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Let running jobs finish their current thread work before the store closes."""
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)


async def prepare_all(ingestor: Ingestor, uploads: list[tuple[str | None, bytes]]
                      ) -> list[Prepared]:
    """Extract and chunk every upload first, so a bad file fails before anything is written."""
    return [await asyncio.to_thread(ingestor.prepare, name, data) for name, data in uploads]


async def ingest(ingestor: Ingestor, collection: str, uploads: list[tuple[str | None, bytes]],
                 job: Job, counter: Any = None) -> list[dict[str, Any]]:
    """Run one upload request to the end, updating `job` as chunks are written.

    Args:
        counter: a Prometheus counter (label: collection) of chunks written, if any.
    """
    job.status = "running"
    docs = await prepare_all(ingestor, uploads)
    job.total = sum(len(d.chunks) for d in docs)
    await asyncio.to_thread(ingestor.ensure_collection, collection)
    for doc in docs:
        row = await asyncio.to_thread(ingestor.write, collection, doc, job.add)
        job.documents.append(row)
        if counter is not None and row["status"] != "unchanged":
            counter.labels(collection).inc(row["chunks"])
    job.status = "done"
    return job.documents


async def run_job(ingestor: Ingestor, collection: str, uploads: list[tuple[str | None, bytes]],
                  job: Job, counter: Any = None) -> None:
    """`ingest` as a background task: failures land in the job, in the error envelope."""
    try:
        await ingest(ingestor, collection, uploads, job, counter)
    except APIError as exc:
        job.status, job.error = "failed", exc.body()["error"]
    except asyncio.CancelledError:
        job.status = "failed"
        job.error = APIError(503, "The service stopped during the ingest.",
                             code="shutdown").body()["error"]
        raise
    except Exception:
        log.exception("ingest job %s failed", job.id)
        job.status = "failed"
        job.error = APIError(500, "The ingest failed.", code="internal_error").body()["error"]
