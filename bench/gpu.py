"""The GPU check (`scripts/gpu-check.sh`, or `tinyllm bench gpu`): llmserver with every layer
offloaded against llama.cpp's `llama-server` and `llama-batched-bench` with the same flags,
at 1, 16 and 64 users.

Both servers get the same slots, KV cache, threads and flash-attention setting and answer
the same non-streaming `/v1/completions` of 128 tokens per user; `llama-batched-bench` runs
between the rounds as the ceiling (batched decode in C, no HTTP). The layers come from
`LLMSERVER_N_GPU_LAYERS` (default -1, all); on a machine without a GPU the script sets 0 and
the same race runs on the CPU, so the check cannot rot. The model: `TINYLLM_GPU_MODEL` (a
GGUF path), else the packaged SmolLM2.
"""

from __future__ import annotations

import contextlib
import logging
import os
import re
import statistics
import tempfile
from pathlib import Path

from llmserver.config import Settings
from llmserver.models import DEFAULT_MODEL, model_name, packaged_models
from tinyllm.procs import ServiceProcess

from . import llamacpp_tools, race

log = logging.getLogger("tinyllm.bench")
USERS = [1, 16, 64]
SLOTS = 64
ANSWER = 128
N_CTX = 512  # per slot: a short prompt and the answer, with room to spare
TARGET = 0.9
COLUMNS = ["users", "llama-batched-bench", "llama-server", "engine",
           "engine / llama-server", "engine / llama-batched-bench"]


def _model() -> tuple[Path, str]:
    chosen = os.environ.get("TINYLLM_GPU_MODEL")
    if chosen:
        path = Path(chosen)
        return path, model_name(path)
    return packaged_models()[DEFAULT_MODEL], DEFAULT_MODEL


def run(out_dir: Path, quick: bool = False) -> str:
    from llama_cpp import Llama

    model, name = _model()
    ngl = int(os.environ.get("LLMSERVER_N_GPU_LAYERS", "-1"))
    threads = int(os.environ.get("LLMSERVER_N_THREADS") or os.cpu_count() or 2)
    flash = os.environ.get("LLMSERVER_FLASH_ATTN") or Settings.model_fields["flash_attn"].default
    vocab = Llama(model_path=str(model), vocab_only=True, verbose=False)
    eos = int(vocab.token_eos())
    prompt_tokens = len(vocab.tokenize(race.prompt(1, 1).encode()))
    vocab.close()
    rounds = 1 if quick else 5
    bins, why = llamacpp_tools.tools()
    if bins is None:
        log.warning("%s: the llama.cpp columns are skipped", why)
    batched: dict[int, list[float]] = {u: [] for u in USERS}
    models = tempfile.TemporaryDirectory()  # the model under its served name, nothing else
    (Path(models.name) / f"{name}.gguf").symlink_to(model.resolve())
    env = {"LLMSERVER_N_THREADS": str(threads), "LLMSERVER_N_CTX": str(N_CTX),
           "LLMSERVER_FLASH_ATTN": flash, "LLMSERVER_PARALLEL": str(SLOTS),
           "LLMSERVER_QUEUE_SIZE": str(SLOTS), "LLMSERVER_N_GPU_LAYERS": str(ngl),
           "LLMSERVER_MODELS_DIR": models.name, "LLMSERVER_DEFAULT_MODEL": name}

    def between(r: int) -> None:
        if bins is None:
            return
        speeds = llamacpp_tools.batched_decode(bins["llama-batched-bench"], model, threads,
                                               USERS, prompt_tokens, ANSWER, flash,
                                               SLOTS * N_CTX, ngl)
        for users in USERS:
            batched[users].append(speeds[users])
        log.info("round %d, llama-batched-bench: %s", r, speeds)

    with contextlib.ExitStack() as stack:
        engine = stack.enter_context(ServiceProcess("llmserver", "LLMSERVER_", env=env))
        sides = {"engine": (engine.url, name)}
        if bins is not None:
            peer = stack.enter_context(llamacpp_tools.server(
                bins["llama-server"], model, threads, SLOTS, SLOTS * N_CTX, flash, ngl))
            sides["llama-server"] = (peer.url, name)
        res = race.race(sides, USERS, rounds, ANSWER, eos, between)
        device = re.findall(r"llmserver: ((?:GPU device|\w+ build|offloading)[^\n]*)",
                            engine.log_path.read_text(errors="replace"))
    models.cleanup()
    return _report(res, batched, name, ngl, threads, flash, rounds, device, why)


def _report(res: dict[str, dict[int, list[float]]], batched: dict[int, list[float]],
            name: str, ngl: int, threads: int, flash: str, rounds: int, device: list[str],
            why: str) -> str:
    rows, missed = [], []
    for users in USERS:
        peer = res.get("llama-server", {}).get(users, [])
        vs_server = race.ratios(res["engine"][users], peer)
        vs_batched = race.ratios(res["engine"][users], batched[users])
        if vs_server and statistics.median(vs_server) < TARGET:
            missed.append(str(users))
        rows.append(" | ".join([f"| {users}", race.spread(batched[users]), race.spread(peer),
                                race.spread(res["engine"][users]),
                                race.spread(vs_server, "{:.2f}"),
                                race.spread(vs_batched, "{:.2f}")]) + " |")
    seen = "; ".join(dict.fromkeys(device)) or "not logged"
    verdict = "no `llama-server` to compare with" if why else (
        f"engine ≥ {TARGET}× `llama-server` at every user count: " +
        ("met" if not missed else f"missed at {', '.join(missed)} users"))
    return f"""## GPU check: llmserver against llama.cpp, layers offloaded

Model `{name}`, `LLMSERVER_N_GPU_LAYERS={ngl}` (llama.cpp's tools with the same `-ngl`),
{threads} threads, flash attention `{flash}`, {SLOTS} slots of {N_CTX} tokens on both servers,
non-streaming `/v1/completions` of {ANSWER} tokens per user (end-of-sequence banned), the same
prompts on both sides, {rounds} interleaved rounds, median [min–max], ratios paired per round.
`llama-batched-bench` decodes the same users in C with no HTTP (its S_TG: decode only).
What llmserver ran on: {seen}.
{f"{chr(10)}> {why}{chr(10)}" if why else ""}
| {' | '.join(COLUMNS)} |
|{'---|' * len(COLUMNS)}
{chr(10).join(rows)}

Verdict: {verdict}.
"""
