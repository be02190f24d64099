"""A fair, bounded queue in front of one or more llmserver base URLs.

Each URL serves at most `concurrency` requests at once: the slots llmserver advertises (it
batches that many generations), learned and followed by `LLMClient.follow_slots`, or a set
number for other servers. What no upstream can take waits, and waiters are served by
person in turn (round robin over requesters: an account, an API key, or a client address),
so one person with many requests cannot push another's first answer back by more than one
turn; each person may hold at most `per_requester` requests, in flight or waiting.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, OrderedDict, deque
from dataclasses import dataclass, field

from services.errors import APIError
from services.http import UpstreamUnavailable

log = logging.getLogger(__name__)


@dataclass
class Upstream:
    url: str
    concurrency: int = 1
    auto: bool = False  # concurrency follows the slots the server advertises
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
    who: str = ""
    granted: asyncio.Future = field(default_factory=lambda: asyncio.get_running_loop()
                                    .create_future())
    moved: asyncio.Event = field(default_factory=asyncio.Event)
    upstream: Upstream | None = None
    counted: bool = True  # holds one of its requester's places until released

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
    """Round-robin queue by requester over several upstreams, each with its own concurrency.

    Args:
        upstreams: the llmserver base URLs and their concurrency.
        max_waiting: how many may wait beyond the free slots; 429 past it.
        retry_down_s: how long an unreachable upstream is skipped.
        per_requester: requests one requester may have in flight and waiting; 429 past it.
    """

    def __init__(self, upstreams: list[Upstream], max_waiting: int, retry_down_s: float,
                 per_requester: int = 1_000_000) -> None:
        self.upstreams = upstreams
        self.max_waiting = max_waiting
        self.retry_down_s = retry_down_s
        self.per_requester = per_requester
        # Waiters by requester; the first key is served next, then moves to the end.
        self.waiting: OrderedDict[str, deque[Ticket]] = OrderedDict()
        self.held: Counter[str] = Counter()  # in flight + waiting, per requester
        self._wake: asyncio.TimerHandle | None = None

    def waiters(self) -> int:
        return sum(len(line) for line in self.waiting.values())

    def position(self, ticket: Ticket) -> int:
        """1-based place in the order tickets will be served; 0 once granted or gone.

        Round r serves the r-th ticket of every requester with more than r, in turn."""
        line = self.waiting.get(ticket.who)
        if not line or ticket not in line:
            return 0
        rank = line.index(ticket)
        ahead = 0
        for who, other in self.waiting.items():
            if who == ticket.who:
                break
            ahead += min(len(other), rank + 1)
        for who, other in reversed(self.waiting.items()):
            if who == ticket.who:
                break
            ahead += min(len(other), rank)
        return ahead + rank + 1

    def all_down(self) -> bool:
        return all(u.is_down() for u in self.upstreams)

    def check(self, who: str = "") -> None:
        """Raise what `enter` would refuse now (503 all down, 429 full), joining nothing."""
        if self.all_down():
            raise UpstreamUnavailable("llmserver", "every model server is down; retrying soon")
        wait = str(max(1, int(self.retry_down_s)))
        if self.held[who] >= self.per_requester:
            raise APIError(429, f"You already have {self.per_requester} answers running or "
                           "waiting; wait for one to finish.", code="too_many_requests",
                           headers={"Retry-After": wait})
        if self.waiters() >= self.max_waiting and not self._free_upstream():
            raise APIError(429, "The model is busy and the queue is full; try again shortly.",
                           code="queue_full", headers={"Retry-After": wait})

    def enter(self, who: str = "") -> Ticket:
        """Join the queue as requester `who`, or fail now: 503 when every upstream is down,
        429 when the queue or the requester's allowance is full."""
        self.check(who)
        ticket = Ticket(self, who)
        self.waiting.setdefault(who, deque()).append(ticket)
        self.held[who] += 1
        self._dispatch()
        return ticket

    def set_concurrency(self, upstream: Upstream, slots: int) -> None:
        """Follow an upstream's advertised slots (a restart with another count included)."""
        if slots != upstream.concurrency:
            log.info("llm upstream %s runs %d at once (was %d)", upstream.url, slots,
                     upstream.concurrency)
            upstream.concurrency = slots
            self._dispatch()

    def _free_upstream(self) -> Upstream | None:
        free = [u for u in self.upstreams if u.has_room()]
        # Least loaded first, then least used, so replicas share the work.
        return min(free, key=lambda u: (u.in_flight / u.concurrency, u.served), default=None)

    def _next(self) -> Ticket:
        who, line = next(iter(self.waiting.items()))
        ticket = line.popleft()
        if line:
            self.waiting.move_to_end(who)
        else:
            del self.waiting[who]
        return ticket

    def _dispatch(self) -> None:
        moved = False
        while self.waiting:
            upstream = self._free_upstream()
            if upstream is None:
                break
            ticket = self._next()
            upstream.in_flight += 1
            upstream.served += 1
            ticket.upstream = upstream
            ticket.granted.set_result(upstream)
            moved = True
        if self.waiting and self.all_down():
            # Nobody can serve the waiters now: tell them rather than hang.
            for line in self.waiting.values():
                for ticket in line:
                    ticket.granted.set_exception(UpstreamUnavailable(
                        "llmserver", "every model server is down"))
                    ticket.granted.exception()  # mark retrieved; the waiter re-raises it
                    self._uncount(ticket)
            self.waiting.clear()
            moved = True
        elif self.waiting:
            self._schedule_wake()
        if moved:
            self._tell_waiters()

    def _tell_waiters(self) -> None:
        for line in self.waiting.values():
            for ticket in line:
                ticket.moved.set()

    def _uncount(self, ticket: Ticket) -> None:
        if ticket.counted:
            ticket.counted = False
            self.held[ticket.who] -= 1
            if self.held[ticket.who] <= 0:
                del self.held[ticket.who]

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
        line = self.waiting.get(ticket.who)
        if line is not None and ticket in line:
            line.remove(ticket)
            if not line:
                del self.waiting[ticket.who]
        elif ticket.granted.done() and not ticket.granted.cancelled() \
                and ticket.granted.exception() is None and ticket.upstream is not None:
            upstream = ticket.upstream
            ticket.upstream = None
            upstream.in_flight -= 1
            if failed:
                self.mark_down(upstream)
        elif not ticket.granted.done():
            ticket.granted.cancel()
        self._uncount(ticket)
        self._dispatch()
        self._tell_waiters()

    def mark_down(self, upstream: Upstream) -> None:
        log.warning("llm upstream %s unreachable; skipping it for %.1fs", upstream.url,
                    self.retry_down_s)
        upstream.down_until = time.monotonic() + self.retry_down_s
        self._dispatch()

    def mark_up(self, upstream: Upstream) -> None:
        upstream.down_until = 0.0

    def snapshot(self) -> dict:
        return {"waiting": self.waiters(), "requesters": len(self.held),
                "upstreams": [{"url": u.url, "in_flight": u.in_flight,
                               "concurrency": u.concurrency, "auto": u.auto,
                               "down": u.is_down()}
                              for u in self.upstreams]}
