"""The llmserver benchmark's "defaults" section: what a user who installs both gets.

`tinyllm up`'s llmserver with no settings against llama.cpp's `llama-server -m MODEL` with
no flags but its address, the same streaming client on both (64 tokens per user, end of
sequence banned), at 1, 4 and 8 users, rounds interleaved with the order alternating.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import statistics
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx

from llmserver.config import Settings, physical_cores
from llmserver.models import DEFAULT_MODEL, packaged_models
from tinyllm.procs import ServiceProcess

from .race import ratios, spread

log = logging.getLogger("tinyllm.bench")
USERS = [1, 4, 8]
TARGET = 1.0  # aggregate decode, llmserver ÷ llama-server, at every user count


def run(quick: bool, bins: dict[str, Path] | None, eos: int) -> str:
    """The section's markdown."""
    from .llmserver import _users

    if bins is None:
        return "### Defaults against defaults\n\n`llama-server` was not built: no comparison.\n"
    rounds = 1 if quick else 9  # one round varies by ±0.1 on a shared 2-core machine
    model = packaged_models()[DEFAULT_MODEL]
    empty = tempfile.TemporaryDirectory()
    res: dict[str, dict[int, list[dict[str, float]]]] = {
        s: {u: [] for u in USERS} for s in ("llmserver", "llama-server")}
    with contextlib.ExitStack() as stack:
        stack.enter_context(_without("LLMSERVER_"))  # the defaults are the point
        ours = stack.enter_context(ServiceProcess("llmserver", "LLMSERVER_", env={
            "LLMSERVER_MODELS_DIR": empty.name}))
        peer = stack.enter_context(ServiceProcess(
            "llama-server", "LLAMA_ARG_", health_timeout=120,
            command=[str(bins["llama-server"]), "-m", str(model)]))
        sides = {"llmserver": ours.url, "llama-server": peer.url}
        props = _props(peer.url)
        for url in sides.values():  # warm-up, not counted
            asyncio.run(_users(url, 0, 2, eos))
        for r in range(1, rounds + 1):
            for k, users in enumerate(USERS):
                order = list(sides) if (r + k) % 2 else list(sides)[::-1]
                for side in order:
                    res[side][users].append(asyncio.run(_users(sides[side], 1000 + r, users,
                                                               eos)))
                    log.info("defaults, round %d, %d users, %s: %.1f tok/s", r, users, side,
                             res[side][users][-1]["tps_all"])
        ours_slots = httpx.get(ours.url + "/v1/models", timeout=10).json()["data"][0]["slots"]
    empty.cleanup()
    return _report(res, rounds, props, ours_slots)


@contextlib.contextmanager
def _without(prefix: str) -> Iterator[None]:
    """This process's environment without the variables starting with `prefix`, restored
    afterwards (the services started meanwhile inherit it)."""
    saved = {k: v for k, v in os.environ.items() if k.startswith(prefix)}
    for name in saved:
        del os.environ[name]
    try:
        yield
    finally:
        os.environ.update(saved)


def _props(url: str) -> dict[str, Any]:
    """What llama-server chose for itself (slots, context), from its /props."""
    try:
        props = httpx.get(url + "/props", timeout=10).json()
    except (httpx.HTTPError, ValueError):
        return {}
    settings = props.get("default_generation_settings") or {}
    return {"slots": props.get("total_slots"), "n_ctx": settings.get("n_ctx")}


def _report(res: dict[str, dict[int, list[dict[str, float]]]], rounds: int,
            props: dict[str, Any], ours_slots: int) -> str:
    rows, missed, span_missed = [], [], []

    def col(side: str, users: int, key: str, scale: float = 1.0) -> list[float]:
        return [v[key] * scale for v in res[side][users]]

    for users in USERS:
        ours, peer = col("llmserver", users, "tps_all"), col("llama-server", users, "tps_all")
        ratio = ratios(ours, peer)
        if ratio and statistics.median(ratio) < TARGET:
            missed.append(f"aggregate at {users} users ({statistics.median(ratio):.2f}×)")
        span = ratios(col("llmserver", users, "tps_span"), col("llama-server", users,
                                                                "tps_span"))
        if span and statistics.median(span) < TARGET:
            span_missed.append(f"{users} users ({statistics.median(span):.2f}×)")
        ours_ttft = col("llmserver", users, "ttft_max", 1000)
        peer_ttft = col("llama-server", users, "ttft_max", 1000)
        rows.append(f"| {users} | {spread(peer)} | {spread(ours)} | {spread(ratio, '{:.2f}')} "
                    f"| {spread(span, '{:.2f}')} | {spread(peer_ttft)} | {spread(ours_ttft)} |")
        if users == max(USERS) and statistics.median(ours_ttft) > statistics.median(peer_ttft):
            missed.append(f"slowest first token at {users} users")
    span_note = ("≥ 1.0× at every user count." if not span_missed else
                 "under 1.0× at " + ", ".join(span_missed) + ".")
    settings = Settings()
    verdict = (f"Targets: llmserver ≥ {TARGET}× `llama-server` in aggregate tokens/s at every "
               f"user count, and a slowest first token at {max(USERS)} users no later "
               "(medians): " +
               ("**met**." if not missed else "**missed**: " + "; ".join(missed) + ".") +
               f" From the first token to the last, llmserver is {span_note}")
    from . import llmserver

    answer = llmserver.ANSWER
    n_ctx = props.get("n_ctx")
    slots = props.get("slots")
    return f"""### Defaults against defaults

`tinyllm up`'s llmserver with no `LLMSERVER_` settings against `llama-server -m MODEL` with no
flags (its address from `LLAMA_ARG_HOST`/`LLAMA_ARG_PORT`), SmolLM2-135M Q4_1, the same
streaming client, {answer} answer tokens per user (end of sequence banned), {rounds} interleaved
rounds, median [min–max]. Aggregate tokens/s: every user's tokens over the time from sending
the requests to the last token (prompts, queueing and decoding: how soon all the answers are
there, as the issue measured a completion). The next column counts only from the first
token any user gets to the last: it charges a server for answering one user early (llmserver
starts the first request's prompt as it arrives, and the others join at the next step), so it
is shown, not judged.

| users | llama-server aggregate tok/s | llmserver aggregate tok/s | llmserver ÷ llama-server | \
first to last token, llmserver ÷ llama-server | \
llama-server slowest first token (ms) | llmserver slowest first token (ms) |
|---|---|---|---|---|---|---|
""" + "\n".join(rows) + f"""

{verdict}

What each side chose by default:

| setting | llama-server | llmserver |
|---|---|---|
| slots | {slots if slots is not None else "?"} | {ours_slots} |
| context | {n_ctx if n_ctx is not None else "?"} cells in all | {settings.n_ctx} tokens per slot |
| flash attention | auto | {settings.flash_attn} |
| threads | physical cores | {physical_cores()} (physical cores) |
| batch | 2048 logical, 512 physical | {settings.n_batch}, prompt chunks of \
{settings.prefill_chunk} per slot |
"""
