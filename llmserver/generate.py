"""Run llama.cpp generations in a worker thread and hand chunks to the event loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncGenerator, Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from .gate import Gate


@dataclass
class Run:
    """One generation: its cancel flag and the number of tokens it sampled."""

    eos: int
    cancel: threading.Event = field(default_factory=threading.Event)
    tokens: int = 0
    started: float = field(default_factory=time.perf_counter)
    first_token_at: float | None = None
    counted: bool = False  # metrics recorded once, whichever path ends the run

    def processor(self, _ids: Any, scores: Any) -> Any:
        """llama-cpp-python logits processor, called once per token to be sampled.

        Once cancelled it leaves only end-of-sequence possible, so llama.cpp stops at the
        very next token in streaming and non-streaming calls alike.
        """
        self.tokens += 1
        if self.first_token_at is None:
            self.first_token_at = time.perf_counter()
        if self.cancel.is_set():
            scores[:] = -float("inf")
            scores[self.eos] = 0.0
        return scores


_END = object()


async def stream_in_thread(
    gate: Gate, start: Callable[[], Iterator[dict[str, Any]]], run: Run
) -> AsyncGenerator[dict[str, Any], None]:
    """Iterate `start()` in a thread; the gate (already acquired) is released when it ends.

    Closing this async iterator (client gone) sets the cancel flag; the thread stops at
    the next token and only then frees the gate, so llama.cpp is never used twice at once.
    """
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[Any] = asyncio.Queue()

    def put(item: Any) -> None:
        loop.call_soon_threadsafe(queue.put_nowait, item)

    def work() -> None:
        try:
            for chunk in start():
                put(chunk)
                if run.cancel.is_set():
                    break
        except BaseException as exc:  # handed to the request, raised there
            put(exc)
        finally:
            put(_END)

    future = loop.run_in_executor(None, work)
    future.add_done_callback(lambda _: gate.release())
    try:
        while True:
            item = await queue.get()
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        run.cancel.set()


async def run_in_thread(gate: Gate, fn: Callable[[], Any], run: Run) -> Any:
    """A non-streaming call in a thread; the gate is released when the thread ends."""
    loop = asyncio.get_running_loop()
    future = loop.run_in_executor(None, fn)
    future.add_done_callback(lambda _: gate.release())
    try:
        return await asyncio.shield(future)
    except asyncio.CancelledError:
        run.cancel.set()
        raise
