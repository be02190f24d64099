"""Ingest embedding in a child process at a low CPU priority, so /search preempts it.

On a small machine the ingest's model batches compete for the cores with the query
embedding of every /search. Niced threads in the service's own process are not enough:
torch's intra-op threads and the GIL are shared with the searches. A child process niced
by `RAG_INGEST_NICE`, with `RAG_INGEST_THREADS` torch threads, takes the cores only when
nothing of normal priority wants them. It loads the same model (no query encoder), once.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Any

import numpy as np

log = logging.getLogger(__name__)
_worker: Any = None  # the child's embedder


def _init(kwargs: dict[str, Any], nice: int, threads: int, parent: int) -> None:
    global _worker
    threading.Thread(target=_exit_with, args=(parent,), name="exit-with-rag", daemon=True
                     ).start()
    if threads:
        import torch

        torch.set_num_threads(threads)
    from .embedder import Embedder

    # Loaded at normal priority (once, at start): niced on a busy machine, the imports and
    # the model load could take minutes and hold up the first upload.
    _worker = Embedder(**kwargs, query_encoder=False)
    _worker.encode(["warm up"])
    if nice:
        renice_threads(nice)


def renice_threads(nice: int) -> None:
    """Lower every thread of this process by `nice` (Linux nice is per thread: torch's
    compute threads, made by the warm-up, would keep running at normal priority)."""
    for tid in os.listdir("/proc/self/task"):
        try:
            now = os.getpriority(os.PRIO_PROCESS, int(tid))
            os.setpriority(os.PRIO_PROCESS, int(tid), min(19, now + nice))
        except OSError:  # a thread that ended meanwhile
            continue


def _exit_with(parent: int) -> None:
    """End this child when rag ends, killed too. Nothing else would: the child waits on its
    call queue, and holds that pipe's write end itself, so no end-of-file ever comes."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


def _encode(texts: list[str]) -> np.ndarray:
    return _worker.encode(texts)


class ProcessEncoder:
    """`encode(texts)` of an embedder, run in a niced child process (restarted if it dies)."""

    def __init__(self, embedder_args: dict[str, Any], nice: int, threads: int) -> None:
        self._args = (embedder_args, nice, threads)
        self._lock = threading.Lock()
        self._pool = self._start()

    def _start(self) -> ProcessPoolExecutor:
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=_init, initargs=(*self._args, os.getpid()))
        pool.submit(_encode, [])  # starts the child (the model loads now, not at an upload)
        return pool

    def encode(self, texts: list[str]) -> np.ndarray:
        pool = self._pool
        try:
            return pool.submit(_encode, texts).result()
        except BrokenProcessPool:
            with self._lock:  # the child died (killed, out of memory): a fresh one next time
                if self._pool is pool:
                    log.error("the ingest encoder process died; starting another")
                    self._pool = self._start()
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
