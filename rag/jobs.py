"""Ingest runs: synchronous or as a background job with progress (GET /jobs/{id}).

At most `max_jobs` run at once (429 with Retry-After beyond); their blocking work runs on
the ingest executor, never on the default thread pool that searches and /health use.
"""

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
RETRY_AFTER_S = 5


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
    def finished(self) -> bool:
        return self.status in ("done", "failed")

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
    """Jobs of this replica: at most `max_running` at once, `kept` finished ones remembered.

    Only finished jobs are ever evicted, oldest first: a running job stays pollable.
    """

    def __init__(self, max_running: int, kept: int) -> None:
        self.max_running = max_running
        self.kept = kept
        self._jobs: OrderedDict[str, Job] = OrderedDict()
        self._tasks: set[asyncio.Task] = set()
        self.running = 0

    def admit(self) -> Job:
        """A new job counted against the running limit; 429 when the limit is reached."""
        if self.running >= self.max_running:
            raise APIError(429, f"{self.running} ingests are running, the most this service "
                                "runs at once; retry later.", code="too_many_ingests",
                           headers={"Retry-After": str(RETRY_AFTER_S)})
        self.running += 1
        job = Job(uuid.uuid4().hex)
        self._jobs[job.id] = job
        self._evict()
        return job

    def release(self) -> None:
        self.running -= 1
        self._evict()

    def _evict(self) -> None:
        extra = len(self._jobs) - self.kept - self.running
        for job_id in [j.id for j in self._jobs.values() if j.finished][:max(0, extra)]:
            del self._jobs[job_id]

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


async def _on(ingestor: Ingestor, fn: Any, *args: Any) -> Any:
    return await asyncio.get_running_loop().run_in_executor(ingestor.executor, fn, *args)


async def prepare_all(ingestor: Ingestor, uploads: list[tuple[str | None, bytes]]
                      ) -> list[Prepared]:
    """Extract and chunk every upload first, so a bad file fails before anything is written."""
    docs: list[Prepared] = []
    chars = 0
    budget = ingestor.settings.max_request_chars
    for name, data in uploads:
        doc = await _on(ingestor, ingestor.prepare, name, data)
        chars += doc.chars
        if chars > budget:
            raise APIError(413, f"The upload's documents have more than {budget} characters "
                                "of text together.", code="too_much_text", param="files")
        docs.append(doc)
    return docs


async def ingest(ingestor: Ingestor, jobs: Jobs, collection: str,
                 uploads: list[tuple[str | None, bytes]], job: Job,
                 counter: Any = None) -> list[dict[str, Any]]:
    """Run one admitted upload to the end, updating `job`; releases its slot when done.

    Args:
        counter: a Prometheus counter (label: collection) of chunks written, if any.
    """
    try:
        job.status = "running"
        docs = await prepare_all(ingestor, uploads)
        del uploads[:]  # the bytes are not needed past extraction
        job.total = sum(len(d.chunks) for d in docs)
        await _on(ingestor, ingestor.ensure_collection, collection)
        for doc in docs:
            row = await _on(ingestor, ingestor.write, collection, doc, job.add)
            job.documents.append(row)
            if counter is not None and row["status"] != "unchanged":
                counter.labels(collection).inc(row["chunks"])
        job.status = "done"
        return job.documents
    except BaseException:
        job.status = "failed"
        raise
    finally:
        jobs.release()


async def run_job(ingestor: Ingestor, jobs: Jobs, collection: str,
                  uploads: list[tuple[str | None, bytes]], job: Job,
                  counter: Any = None) -> None:
    """`ingest` as a background task: failures land in the job, in the error envelope."""
    try:
        await ingest(ingestor, jobs, collection, uploads, job, counter)
    except APIError as exc:
        job.error = exc.body()["error"]
    except asyncio.CancelledError:
        job.error = APIError(503, "The service stopped during the ingest.",
                             code="shutdown").body()["error"]
        raise
    except Exception:
        log.exception("ingest job %s failed", job.id)
        job.error = APIError(500, "The ingest failed.", code="internal_error").body()["error"]
