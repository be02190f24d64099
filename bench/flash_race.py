"""The llmserver benchmark's flash-attention table: what `LLMSERVER_FLASH_ATTN` is worth.

llmserver with flash attention on against the same server with it off (8 slots, the same
threads and cache otherwise), and `llama-batched-bench` with `-fa on` against `-fa off` on the
servers' cache, at 1 and 8 users; rounds interleaved, the order alternating, ratios paired.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import tempfile
from pathlib import Path
from typing import Any

from tinyllm.procs import ServiceProcess

from . import llamacpp_tools
from .race import ratios, spread

log = logging.getLogger("tinyllm.bench")
USERS = [1, 8]
MODES = ("on", "off")


def run(quick: bool, bins: dict[str, Path] | None, model: Path, threads: int, n_ctx: int,
        prompt_tokens: int, eos: int) -> str:
    """The section's markdown."""
    from .llmserver import ANSWER, _users

    rounds = 1 if quick else 5
    res: dict[str, dict[int, list[float]]] = {
        f"{side} {mode}": {u: [] for u in USERS}
        for side in ("llmserver", "batched") for mode in MODES}
    empty = tempfile.TemporaryDirectory()
    env = {"LLMSERVER_N_THREADS": str(threads), "LLMSERVER_N_CTX": str(n_ctx),
           "LLMSERVER_PARALLEL": str(max(USERS)), "LLMSERVER_MODELS_DIR": empty.name}
    with contextlib.ExitStack() as stack:
        urls = {mode: stack.enter_context(ServiceProcess(
            "llmserver", "LLMSERVER_", env={**env, "LLMSERVER_FLASH_ATTN": mode})).url
            for mode in MODES}
        for url in urls.values():  # warm-up, not counted
            asyncio.run(_users(url, 0, 2, eos))
        for r in range(1, rounds + 1):
            order = list(MODES) if r % 2 else list(MODES)[::-1]
            for users in USERS:
                for mode in order:
                    got = asyncio.run(_users(urls[mode], 2000 + r, users, eos))
                    res[f"llmserver {mode}"][users].append(got["tps_span"])
            if bins is not None:
                for mode in order:
                    speeds = llamacpp_tools.batched_decode(
                        bins["llama-batched-bench"], model, threads, USERS, prompt_tokens,
                        ANSWER, mode, max(USERS) * n_ctx)
                    for users in USERS:
                        res[f"batched {mode}"][users].append(speeds[users])
            log.info("flash attention, round %d/%d done", r, rounds)
    empty.cleanup()
    return _report(res, rounds, threads, bins is not None)


def _report(res: dict[str, dict[int, list[float]]], rounds: int, threads: int,
            tools: bool) -> str:
    rows = []
    for users in USERS:
        cells: list[Any] = [users]
        for side in ("llmserver", "batched"):
            on, off = res[f"{side} on"][users], res[f"{side} off"][users]
            cells += [spread(off), spread(on), spread(ratios(on, off), "{:.2f}")] if on else \
                ["–", "–", "–"]
        rows.append("| " + " | ".join(map(str, cells)) + " |")
    skipped = "" if tools else "\n`llama-batched-bench` was not built: its columns are empty.\n"
    return f"""### Flash attention on and off

llmserver with `LLMSERVER_FLASH_ATTN=on` against `off` ({max(USERS)} slots, {threads} threads,
otherwise the same), tokens/s from the first token to the last, and `llama-batched-bench` with
`-fa on` against `-fa off` on the servers' cache (S_TG); {rounds} interleaved rounds, the
order alternating, median [min–max], ratios paired per round.
{skipped}
| users | llmserver off tok/s | llmserver on tok/s | on ÷ off | llama-batched-bench off | \
llama-batched-bench on | on ÷ off |
|---|---|---|---|---|---|---|
""" + "\n".join(rows) + "\n"
