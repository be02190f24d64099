"""Model lifetime: nothing can use a model that is being unloaded."""

from __future__ import annotations

import asyncio
import shutil
import time

from llmserver.config import Settings
from llmserver.models import DEFAULT_MODEL, packaged_models
from llmserver.pool import ModelPool


def test_unload_waits_for_every_lease(tmp_path) -> None:
    shutil.copy(packaged_models()[DEFAULT_MODEL], tmp_path / "other.gguf")
    settings = Settings(models_dir=tmp_path, max_loaded_models=1, parallel=1)
    pool, bystander = ModelPool(settings), ModelPool(settings)

    async def main() -> None:
        first = await pool.acquire(None)  # e.g. a /tokenize call in progress
        swap = asyncio.create_task(pool.acquire("other"))
        # Meanwhile a pool of its own loads the same file: what the swap would need, were it
        # not waiting for the lease. It finishes; the swap has not even unloaded `first`.
        start = time.perf_counter()
        bystander.release(await bystander.acquire("other"))
        load_s = time.perf_counter() - start
        assert not swap.done()  # the other model waits for the lease to end
        assert first.engine.thread.is_alive() and first.engine.rt.ctx is not None
        assert first.count_text("still usable") > 0
        late = asyncio.create_task(pool.acquire(None))  # asks for the model being unloaded
        # The lease is all it waits for: once returned, the swap is done about as soon as
        # an unload and a load allow.
        pool.release(first)
        other = await asyncio.wait_for(swap, 10 + 3 * load_s)
        assert first.engine.rt.ctx is None and not first.engine.thread.is_alive()
        assert other.name == "other"
        pool.release(other)
        again = await asyncio.wait_for(late, 120)  # loaded afresh, not the freed one
        assert again is not first and again.engine.rt.ctx is not None
        pool.release(again)

    try:
        asyncio.run(main())
    finally:
        pool.close()
        bystander.close()
