"""The llmserver benchmark's "cheap step" section: llmserver's engine against llama.cpp's
`llama-server` on a model whose decode step costs almost nothing.

On a GPU a small model decodes a step in well under a millisecond, so what a server spends
around each step (building the batch, sampling, handing tokens to requests) decides its
speed. The trainer's tiny model (embedding 64, 2 layers, vocabulary 512) gives steps that
cheap on two CPU cores, so the race runs here: both servers with the same slots, cache,
threads and flash-attention setting, non-streaming `/v1/completions` of 128 tokens per user.
"""

from __future__ import annotations

import contextlib
import logging
import statistics
from pathlib import Path

from llmserver.models import model_name
from tinyllm.procs import ServiceProcess

from . import llamacpp_tools, race

log = logging.getLogger("tinyllm.bench")
USERS = [1, 16, 32, 64]
SLOTS = 64
ANSWER = 128
N_CTX = 256  # per slot: the tiny model's trained context
TARGET = 0.9
MIN_TOKENS = SLOTS * ANSWER  # per value: one request at 1 user is too short a sample


def run(quick: bool, bins: dict[str, Path] | None, threads: int, flash: str
        ) -> tuple[str, dict[str, dict[int, list[float]]]]:
    """The section's markdown, and the per-round tokens/s behind it."""
    from llama_cpp import Llama

    model = race.tiny_model()
    vocab = Llama(model_path=str(model), vocab_only=True, verbose=False)
    eos = int(vocab.token_eos())
    vocab.close()
    rounds = 1 if quick else 9
    name = model_name(model)
    env = {"LLMSERVER_N_THREADS": str(threads), "LLMSERVER_N_CTX": str(N_CTX),
           "LLMSERVER_FLASH_ATTN": flash, "LLMSERVER_PARALLEL": str(SLOTS),
           "LLMSERVER_QUEUE_SIZE": str(SLOTS), "LLMSERVER_MODELS_DIR": str(model.parent),
           "LLMSERVER_DEFAULT_MODEL": name}
    with contextlib.ExitStack() as stack:
        engine = stack.enter_context(ServiceProcess("llmserver", "LLMSERVER_", env=env))
        sides = {"engine": (engine.url, name)}
        if bins is not None:
            peer = stack.enter_context(llamacpp_tools.server(
                bins["llama-server"], model, threads, SLOTS, SLOTS * N_CTX, flash))
            sides["llama-server"] = (peer.url, name)
        res = race.race(sides, USERS, rounds, ANSWER, eos, min_tokens=MIN_TOKENS)
    return _report(res, rounds, threads, flash), res


def _report(res: dict[str, dict[int, list[float]]], rounds: int, threads: int, flash: str
            ) -> str:
    rows, missed = [], []
    for users in USERS:
        ratio = race.ratios(res["engine"][users], res.get("llama-server", {}).get(users, []))
        if ratio and statistics.median(ratio) < TARGET:
            missed.append(str(users))
        rows.append(f"| {users} | {race.spread(res.get('llama-server', {}).get(users, []))} | "
                    f"{race.spread(res['engine'][users])} | "
                    f"{race.spread(ratio, '{:.2f}')} |")
    verdict = (f"Target: the engine ≥ {TARGET}× `llama-server` at every user count (median of "
               "the paired rounds): " +
               ("met." if not missed else f"missed at {', '.join(missed)} users."))
    if "llama-server" not in res:
        verdict = "`llama-server` was not built: no comparison."
    return f"""### Cheap step: serving overhead when a decode step costs almost nothing

The trainer's tiny model (embedding {race.TINY["embd"]}, {race.TINY["layer"]} layers, vocabulary
{race.TINY["vocab-size"]}: a decode step as cheap as a small model's on a GPU), {threads} threads,
flash attention `{flash}`, {SLOTS} slots of {N_CTX} tokens on both sides, non-streaming
`/v1/completions` of {ANSWER} tokens per user
(end-of-sequence banned), the same prompts on both sides; aggregate tokens/s from the first
request sent to the last answer read, each value over at least {MIN_TOKENS} tokens (fewer users
are repeated back to back), {rounds} interleaved rounds, median [min–max], ratios paired per
round.

| users | llama-server tok/s | engine tok/s | engine / llama-server |
|---|---|---|---|
{chr(10).join(rows)}

{verdict}
"""


def plot(res: dict[str, dict[int, list[float]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3.6))
    for side, label, style in [("llama-server", f"llama-server, {SLOTS} slots", "m-d"),
                               ("engine", f"llmserver, {SLOTS} slots", "g-o")]:
        if side in res:
            ax.plot(USERS, [statistics.median(res[side][u]) if res[side][u] else float("nan")
                            for u in USERS], style, label=label)
    ax.set(xlabel="concurrent users", ylabel="aggregate tokens/s", xticks=USERS,
           title="Cheap decode steps (the trainer's tiny model)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
