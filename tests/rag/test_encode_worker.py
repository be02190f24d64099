"""The ingest encoder child: same vectors as the service's embedder, niced, replaced if it dies."""

from __future__ import annotations

import os
import signal
from concurrent.futures.process import BrokenProcessPool

import numpy as np
import pytest

from rag.encode_worker import ProcessEncoder

pytestmark = pytest.mark.slow


def test_child_encodes_like_the_embedder_niced_and_is_replaced_when_killed(embedder):
    encoder = ProcessEncoder(embedder.init_args, nice=7, threads=2)
    try:
        texts = ["Alpacas hum when they are content.", "The tide turns twice a day."]
        np.testing.assert_allclose(encoder.encode(texts), embedder.encode(texts), atol=1e-5)
        (pid,) = encoder._pool._processes  # type: ignore[attr-defined]
        # Every thread, torch's compute threads too (Linux nice is per thread).
        base = os.getpriority(os.PRIO_PROCESS, 0)
        nices = {int(t): os.getpriority(os.PRIO_PROCESS, int(t))
                 for t in os.listdir(f"/proc/{pid}/task")}
        assert len(nices) > 1 and all(n >= base + 7 for n in nices.values()), nices
        os.kill(pid, signal.SIGKILL)  # an out-of-memory kill, say
        with pytest.raises(BrokenProcessPool):
            encoder.encode(texts)
        assert encoder.encode(texts[:1]).shape == (1, embedder.dim)
    finally:
        encoder.close()
