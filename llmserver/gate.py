"""One generation at a time; a bounded line of waiters; a full line answers 429."""

from __future__ import annotations

import asyncio
from collections import deque

from services.errors import APIError


class Gate:
    """A FIFO slot for the model with a bound on how many may wait.

    `release()` is synchronous so the worker thread's completion can free the slot even
    when the request that took it was cancelled.
    """

    def __init__(self, max_waiting: int, retry_after: int = 2) -> None:
        self.max_waiting = max_waiting
        self.retry_after = retry_after
        self.busy = False
        self.waiters: deque[asyncio.Future[None]] = deque()

    @property
    def waiting(self) -> int:
        return len(self.waiters)

    async def acquire(self) -> None:
        if not self.busy and not self.waiters:
            self.busy = True
            return
        if len(self.waiters) >= self.max_waiting:
            raise APIError(429, "The server is busy: the request queue is full. Retry later.",
                           code="queue_full", headers={"Retry-After": str(self.retry_after)})
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            if waiter in self.waiters:
                self.waiters.remove(waiter)
            elif waiter.done() and not waiter.cancelled():
                self.release()  # we were handed the slot just as we gave up: pass it on
            raise

    def release(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)  # the slot passes straight to the next in line
                return
        self.busy = False
