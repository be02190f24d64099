"""The chatbot's queue serves people in turn, caps each person, and follows the slots an
upstream advertises."""

from __future__ import annotations

import asyncio

import pytest

from chatbot.queue import FairQueue, Upstream
from services.errors import APIError


def test_people_are_served_in_turn_and_positions_say_so() -> None:
    async def main() -> None:
        queue = FairQueue([Upstream("a", 1)], max_waiting=100, retry_down_s=1)
        holder = queue.enter("alice")
        alice = [queue.enter("alice") for _ in range(20)]
        bob = queue.enter("bob")
        carol = [queue.enter("carol") for _ in range(2)]
        # FIFO would put bob 21st; in turn he is second (after alice's next one).
        assert bob.position() == 2
        assert [t.position() for t in carol] == [3, 5]
        assert [t.position() for t in alice[:3]] == [1, 4, 6]
        served: list[str] = []
        ticket = holder
        owner = {id(t): "alice" for t in alice} | {id(bob): "bob"} | \
            {id(t): "carol" for t in carol}
        for _ in range(6):
            ticket.release()
            ticket = next(t for t in alice + [bob] + carol
                          if t.granted.done() and t.upstream is not None)
            served.append(owner[id(ticket)])
        assert served == ["alice", "bob", "carol", "alice", "carol", "alice"]
        # Each served ticket was where its position said.
        assert queue.waiters() == 20 + 1 + 2 - 6

    asyncio.run(main())


def test_a_person_is_capped_and_others_are_not() -> None:
    async def main() -> None:
        queue = FairQueue([Upstream("a", 1)], max_waiting=100, retry_down_s=1,
                          per_requester=3)
        mine = [queue.enter("script") for _ in range(3)]
        with pytest.raises(APIError) as err:
            queue.enter("script")
        assert err.value.status == 429 and err.value.code == "too_many_requests"
        assert "Retry-After" in err.value.headers
        queue.enter("someone-else")  # unaffected
        mine[0].release()
        mine[0].release()  # twice: counted once
        queue.enter("script")  # a place came free
        with pytest.raises(APIError):
            queue.enter("script")
        assert queue.held["script"] == 3

    asyncio.run(main())


def test_concurrency_follows_the_advertised_slots() -> None:
    async def main() -> None:
        upstream = Upstream("a", 1, auto=True)
        queue = FairQueue([upstream], max_waiting=100, retry_down_s=1)
        tickets = [queue.enter(f"user{i}") for i in range(6)]
        assert sum(t.granted.done() for t in tickets) == 1
        queue.set_concurrency(upstream, 4)  # learned: llmserver runs 4 at once
        assert sum(t.granted.done() for t in tickets) == 4
        queue.set_concurrency(upstream, 2)  # restarted with fewer: no new grants until below
        for t in tickets[:3]:
            t.release()
        assert upstream.in_flight == 2 and sum(t.granted.done() for t in tickets[3:]) == 2

    asyncio.run(main())
