"""Run one document's extraction in a child process with a memory and a time limit.

A hostile file (a DOCX of millions of empty paragraphs, a tag flood, a PDF that loops) can
make any parser slow or hungry. The child gets `RLIMIT_AS` (address space) and a wall-clock
deadline enforced by the parent, which kills it; the service's own memory never sees more
than the extracted text. Children fork from a forkserver that has the parsers imported, so
each costs milliseconds, not an interpreter start. The answer comes back as JSON, never a
pickle: the child handled untrusted bytes.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
import resource
from dataclasses import asdict
from typing import Any

from services.errors import APIError
from services.extract import Extracted, Limits, extract, timed_out

log = logging.getLogger(__name__)
_CTX: Any = None


def _context() -> Any:
    global _CTX
    if _CTX is None:
        ctx = multiprocessing.get_context("forkserver")
        # "__main__" once in the server, so children do not each re-import the main module.
        ctx.set_forkserver_preload(["__main__", "services.extract", "lxml.etree", "pypdf"])
        _CTX = ctx
    return _CTX


def _child(conn: Any, data: bytes, filename: str, limits: Limits, memory_bytes: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (memory_bytes, memory_bytes))
    cpu = int(limits.timeout_s) + 5
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 5))
    try:
        result = extract(data, filename, limits)
        answer: dict[str, Any] = {"ok": asdict(result)}
    except APIError as exc:
        answer = {"error": {"status": exc.status, "message": exc.message, "code": exc.code}}
    except MemoryError:
        answer = {"error": {"status": 413, "code": "extraction_memory",
                            "message": "Extracting the document needs more memory than allowed."}}
    del data
    try:
        conn.send_bytes(json.dumps(answer).encode())
    except MemoryError:
        os._exit(3)
    conn.close()


def _memory_error() -> APIError:
    return APIError(413, "Extracting the document needs more memory than allowed.",
                    code="extraction_memory", param="files")


def extract_bounded(data: bytes, filename: str, limits: Limits, memory_bytes: int) -> Extracted:
    """`extract` in a limited child process (blocking: call from a worker thread).

    Raises:
        APIError: whatever extraction raises; 413 `extraction_memory` when the child runs out
        of memory; 422 `extraction_timeout` past the deadline.
    """
    ctx = _context()
    receiver, sender = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_child, args=(sender, data, filename, limits, memory_bytes),
                       daemon=True)
    proc.start()
    sender.close()
    try:
        # Leave the child time to report its own timeout before killing it.
        if not receiver.poll(limits.timeout_s + 2):
            raise timed_out()
        try:
            raw = receiver.recv_bytes()
        except EOFError:
            proc.join(5)
            log.warning("extraction child of %s died (exit %s)", filename, proc.exitcode)
            raise _memory_error() from None
    finally:
        if proc.is_alive():
            proc.kill()
        proc.join(5)
        receiver.close()
    answer = json.loads(raw)
    if "error" in answer:
        err = answer["error"]
        raise APIError(int(err["status"]), str(err["message"]), code=err["code"], param="files")
    ok = answer["ok"]
    return Extracted(ok["kind"], ok["text"], ok["page_starts"], ok["title"],
                     [tuple(h) for h in ok["headings"]])  # type: ignore[misc]
