"""A fair, bounded queue in front of one or more llmserver base URLs.

Each URL serves at most `concurrency` requests at once (llmserver generates one at a time and
would otherwise interrupt a running stream); everyone else waits in arrival order.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from dataclasses import dataclass, field

from services.errors import APIError
from services.http import UpstreamUnavailable

log = logging.getLogger(__name__)


@dataclass
class Upstream:
    url: str
    concurrency: int = 1
    in_flight: int = 0
    down_until: float = 0.0
    served: int = 0

    def is_down(self) -> bool:
        return time.monotonic() < self.down_until

    def has_room(self) -> bool:
        return self.in_flight < self.concurrency and not self.is_down()


@dataclass
class Ticket:
    """A place in the queue; `granted` resolves to the upstream it may use."""

    queue: FairQueue
    granted: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop()
                                    .create_future())
    moved: asyncio.Event = field(default_factory=asyncio.Event)
    upstream: Upstream | None = None

    def position(self) -> int:
        """1-based place among waiters; 0 once granted."""
        return self.queue.position(self)

    async def wait(self) -> Upstream:
        """Wait for a slot; cancelling the caller leaves the queue."""
        try:
            upstream: Upstream = await asyncio.shield(self.granted)
        except asyncio.CancelledError:
            self.release()
            raise
        self.upstream = upstream
        return upstream

    def release(self, failed: bool = False) -> None:
        """Give the slot (or the place in line) back; `failed` marks the upstream down."""
        self.queue.release(self, failed)


class FairQueue:
    """Arrival-order queue over several upstreams, each with its own concurrency.

    Args:
        upstreams: the llmserver base URLs and their concurrency.
        max_waiting: how many may wait beyond the free slots; 429 past it.
        retry_down_s: how long an unreachable upstream is skipped.
    """

    def __init__(self, upstreams: list[Upstream], max_waiting: int, retry_down_s: float) -> None:
        self.upstreams = upstreams
        self.max_waiting = max_waiting
        self.retry_down_s = retry_down_s
        self.waiting: deque[Ticket] = deque()
        self._wake: asyncio.TimerHandle | None = None

    def position(self, ticket: Ticket) -> int:
        try:
            return self.waiting.index(ticket) + 1
        except ValueError:
            return 0

    def all_down(self) -> bool:
        return all(u.is_down() for u in self.upstreams)

    def check(self) -> None:
        """Raise what `enter` would refuse now (503 all down, 429 full), joining nothing."""
        if self.all_down():
            raise UpstreamUnavailable("llmserver", "every model server is down; retrying soon")
        if len(self.waiting) >= self.max_waiting and not self._free_upstream():
            wait = max(1, int(self.retry_down_s))
            raise APIError(429, "The model is busy and the queue is full; try again shortly.",
                           code="queue_full", headers={"Retry-After": str(wait)})

    def enter(self) -> Ticket:
        """Join the queue, or fail now: 503 when every upstream is down, 429 when full."""
        self.check()
        ticket = Ticket(self)
        self.waiting.append(ticket)
        self._dispatch()
        return ticket

    def _free_upstream(self) -> Upstream | None:
        free = [u for u in self.upstreams if u.has_room()]
        # Least loaded first, then least used, so replicas share the work.
        return min(free, key=lambda u: (u.in_flight / u.concurrency, u.served), default=None)

    def _dispatch(self) -> None:
        moved = False
        while self.waiting:
            upstream = self._free_upstream()
            if upstream is None:
                break
            ticket = self.waiting.popleft()
            upstream.in_flight += 1
            upstream.served += 1
            ticket.upstream = upstream
            ticket.granted.set_result(upstream)
            moved = True
        if self.waiting and self.all_down():
            # Nobody can serve the waiters now: tell them rather than hang.
            for ticket in list(self.waiting):
                ticket.granted.set_exception(UpstreamUnavailable("llmserver", "every model "
                                                                 "server is down"))
                ticket.granted.exception()  # mark retrieved; the waiter re-raises it
            self.waiting.clear()
            moved = True
        elif self.waiting:
            self._schedule_wake()
        if moved:
            for ticket in self.waiting:
                ticket.moved.set()

    def _schedule_wake(self) -> None:
        """A down upstream comes back by time alone: re-dispatch when its mark expires."""
        downs = [u.down_until for u in self.upstreams
                 if u.is_down() and u.in_flight < u.concurrency]
        if not downs or self._wake is not None:
            return
        loop = asyncio.get_running_loop()

        def wake() -> None:
            self._wake = None
            self._dispatch()

        self._wake = loop.call_later(max(0.0, min(downs) - time.monotonic()) + 0.01, wake)

    def release(self, ticket: Ticket, failed: bool = False) -> None:
        if ticket in self.waiting:
            self.waiting.remove(ticket)
        elif ticket.granted.done() and not ticket.granted.cancelled() \
                and ticket.granted.exception() is None and ticket.upstream is not None:
            upstream = ticket.upstream
            ticket.upstream = None
            upstream.in_flight -= 1
            if failed:
                self.mark_down(upstream)
        elif not ticket.granted.done():
            ticket.granted.cancel()
        self._dispatch()
        for other in self.waiting:
            other.moved.set()

    def mark_down(self, upstream: Upstream) -> None:
        log.warning("llm upstream %s unreachable; skipping it for %.1fs", upstream.url,
                    self.retry_down_s)
        upstream.down_until = time.monotonic() + self.retry_down_s
        self._dispatch()

    def mark_up(self, upstream: Upstream) -> None:
        upstream.down_until = 0.0

    def snapshot(self) -> dict:
        return {"waiting": len(self.waiting),
                "upstreams": [{"url": u.url, "in_flight": u.in_flight,
                               "concurrency": u.concurrency, "down": u.is_down()}
                              for u in self.upstreams]}
