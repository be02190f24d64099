"""The gate in front of the model: FIFO order, bounded waiting, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from llmserver.gate import Gate
from services.errors import APIError


def test_fifo_order_and_bound() -> None:
    async def main() -> list[int]:
        gate = Gate(max_waiting=3)
        order: list[int] = []
        await gate.acquire()  # held by "request 0"

        async def request(i: int) -> None:
            await gate.acquire()
            order.append(i)
            await asyncio.sleep(0.01)
            gate.release()

        tasks = [asyncio.create_task(request(i)) for i in (1, 2, 3)]
        await asyncio.sleep(0.01)
        assert gate.waiting == 3
        with pytest.raises(APIError) as full:
            await gate.acquire()
        assert full.value.status == 429 and full.value.headers["Retry-After"]
        gate.release()
        await asyncio.gather(*tasks)
        assert not gate.busy
        return order

    assert asyncio.run(main()) == [1, 2, 3]


def test_cancelled_waiter_leaves_the_line() -> None:
    async def main() -> None:
        gate = Gate(max_waiting=2)
        await gate.acquire()
        waiter = asyncio.create_task(gate.acquire())
        await asyncio.sleep(0.01)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        assert gate.waiting == 0
        gate.release()
        assert not gate.busy
        await asyncio.wait_for(gate.acquire(), 1)  # the slot is free again

    asyncio.run(main())
