"""llmserver's batching engine against llama.cpp's own limits, its own server, and the
one-slot path.

At 1, 2, 4 and 8 concurrent streaming users (64 answer tokens each, SmolLM2 Q4_1, the
same threads everywhere) it measures aggregate decode tokens/s and time to first token
of: llmserver with its slots (`LLMSERVER_PARALLEL=8`), llmserver with one slot (the
one-request-at-a-time path), `llama-server` (llama.cpp's C++ HTTP server, same slots and KV
cache), `llama-batched-bench` (llama.cpp batched decode in C, no HTTP: the ceiling) and
`llama-bench` (one stream). Every round gives the servers the identical prompts (unique per
round and user, never per side), alternates the order of the servers, and runs llama.cpp's
tools before the servers in even rounds and after them in odd ones, so all sides meet the
same noise; the report gives median [min-max]
over rounds and paired per-round ratios.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import math
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

import httpx

from llmserver.config import Settings
from llmserver.models import DEFAULT_MODEL, packaged_models
from tinyllm.procs import ServiceProcess

from . import cheapstep, defaults, flash_race, llamacpp_tools
from .race import spread

log = logging.getLogger("tinyllm.bench")
USERS = [1, 2, 4, 8]
ANSWER = 64
SIDES = ("engine", "one-slot", "llama-server", "batched", "smallest")
N_CTX = 2048  # tokens per slot, in the server and in llama-batched-bench's sequences
TOPICS = ["a lighthouse", "a lost key", "the first snow", "a robot cook", "an old map",
          "a night train", "a garden", "a chess match"]


SPEED = ["users", "llama-batched-bench", "smallest cache", "llama-server", "engine",
         "engine / llama-batched-bench", "engine / smallest cache", "engine / llama-server",
         "engine, whole span", "one slot"]
LATENCY = ["users", "engine slowest", "engine median", "llama-server slowest",
           "llama-server median", "one slot slowest",
           "CPU ms/token: engine process, its event loop, bench client"]


def header(columns: list[str]) -> str:
    return f"| {' | '.join(columns)} |\n|{'---|' * len(columns)}"


def prompt(round_: int, user: int) -> str:
    return f"Story {round_}.{user}: write a short story about {TOPICS[user % len(TOPICS)]}."


CONTENT = re.compile(rb'"content":\s*"[^"]')  # a delta with text (not the empty first one)


async def _one(url: str, text: str, eos: int) -> dict[str, float]:
    """One streamed answer, read with as little client CPU as possible.

    On a machine with few cores the client competes with the server's decoding: a full HTTP
    client parsing every SSE event as JSON costs about 0.8 ms per token here, more than the
    server's own event loop. So the stream is read as raw bytes, counting the content deltas
    in each read (with its time), and the usage chunk at the end gives the total."""
    # EOS is banned so every answer is exactly ANSWER tokens on both sides.
    body = json.dumps({
        "model": DEFAULT_MODEL, "messages": [{"role": "user", "content": text}],
        "max_tokens": ANSWER, "temperature": 0, "stream": True,
        "logit_bias": {str(eos): -100}, "stream_options": {"include_usage": True}}).encode()
    host, port = url.removeprefix("http://").rsplit(":", 1)
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /v1/chat/completions HTTP/1.1\r\nHost: " + host.encode() +
                 b"\r\nContent-Type: application/json\r\nConnection: close\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    data = bytearray()
    arrivals: list[tuple[float, int]] = []  # (when, content deltas) per read
    done = 0  # data up to here is whole events already counted
    while chunk := await reader.read(65536):
        now = time.perf_counter()
        data += chunk
        cut = data.rfind(b"\n\n")
        if cut >= done:
            arrivals.append((now, len(CONTENT.findall(data, done, cut))))
            done = cut + 2
    end = time.perf_counter()
    writer.close()
    assert data.startswith(b"HTTP/1.1 200"), bytes(data[:200])
    usage = data.rfind(b'"completion_tokens":')
    tokens = int(data[usage + 20:].split(b",", 1)[0].split(b"}", 1)[0])
    arrivals = [(t, n) for t, n in arrivals if n]
    assert arrivals and tokens == ANSWER == sum(n for _, n in arrivals), tokens
    return {"start": start, "first": arrivals[0][0], "last": arrivals[-1][0], "end": end,
            "tokens": tokens, "arrivals": arrivals}


def cpu_seconds(pid: int) -> tuple[float, float]:
    """CPU time (ns-resolution schedstat) of a whole process and of its main thread, where
    a uvicorn server runs its event loop; (nan, nan) where /proc has no schedstat."""
    def read(tid: str) -> float:
        return int(Path(f"/proc/{pid}/task/{tid}/schedstat").read_text().split()[0]) / 1e9

    try:
        return sum(read(t) for t in os.listdir(f"/proc/{pid}/task")), read(str(pid))
    except (OSError, ValueError):
        return math.nan, math.nan


async def _users(url: str, round_: int, users: int, eos: int,
                 pid: int | None = None) -> dict[str, float]:
    before = cpu_seconds(pid) if pid else (math.nan, math.nan)
    client_before = time.process_time()
    runs = await asyncio.gather(*(_one(url, prompt(round_, u), eos) for u in range(users)))
    after = cpu_seconds(pid) if pid else (math.nan, math.nan)
    client_cpu = time.process_time() - client_before
    tokens = sum(r["tokens"] for r in runs)
    ttfts = sorted(r["first"] - r["start"] for r in runs)
    # Decode speed while every user decodes, as llama-batched-bench's S_TG: from the last
    # first token (every prompt read) to the first last token, the tokens that came in
    # between. Before it, late prompts are still being read; after it, fewer users remain.
    opened, closed = max(r["first"] for r in runs), min(r["last"] for r in runs)
    inside = sum(n for r in runs for t, n in r["arrivals"] if opened < t <= closed)
    # Server CPU per generated token: less sensitive to a busy machine than wall time
    # (the event loop's share is what Python's HTTP side costs per token).
    # One slot answers in turn: no window where every user decodes (nan, the span applies).
    return {"tps": inside / (closed - opened) if closed > opened else math.nan,
            "tps_span": sum(r["tokens"] - 1 for r in runs) /
            (max(r["last"] for r in runs) - min(r["first"] for r in runs)),
            # Whole answers: every token over the time from sending the requests to the
            # last token (prompts, queueing and decoding: what the users wait for).
            "tps_all": tokens / (max(r["last"] for r in runs) - min(r["start"] for r in runs)),
            "ttft_max": ttfts[-1], "ttft_med": statistics.median(ttfts),
            "cpu": 1000 * (after[0] - before[0]) / tokens,
            "loop_cpu": 1000 * (after[1] - before[1]) / tokens,
            "client_cpu": 1000 * client_cpu / tokens}


def _prompt_tokens(url: str) -> int:
    """The prompt tokens one benchmark question takes in the server, chat template included
    (its usage), so llama.cpp's tools evaluate prompts of the servers' length."""
    reply = httpx.post(url + "/v1/chat/completions", timeout=120, json={
        "model": DEFAULT_MODEL, "messages": [{"role": "user", "content": prompt(1, 0)}],
        "max_tokens": 1, "temperature": 0})
    reply.raise_for_status()
    return int(reply.json()["usage"]["prompt_tokens"])


def run(out_dir: Path, quick: bool = False) -> str:
    from llama_cpp import Llama

    rounds = 1 if quick else 9  # single rounds vary by ±0.15 on a shared 2-core machine
    threads = int(os.environ.get("LLMSERVER_N_THREADS") or 2)
    # llmserver's flash attention (its default unless set), given to llama.cpp's tools too
    flash = os.environ.get("LLMSERVER_FLASH_ATTN") or Settings.model_fields["flash_attn"].default
    model = packaged_models()[DEFAULT_MODEL]
    vocab = Llama(model_path=str(model), vocab_only=True, verbose=False)
    eos = int(vocab.token_eos())
    vocab.close()
    bins, why = llamacpp_tools.tools()
    if bins is None:
        log.warning("%s: the llama.cpp columns are skipped", why)
    empty = tempfile.TemporaryDirectory()  # no extra models; nothing written into out_dir
    env = {"LLMSERVER_N_THREADS": str(threads), "LLMSERVER_N_CTX": str(N_CTX),
           "LLMSERVER_FLASH_ATTN": flash,
           "LLMSERVER_QUEUE_SIZE": "16", "LLMSERVER_MODELS_DIR": empty.name}
    res: dict[str, dict[int, list[dict[str, float]]]] = {
        s: {u: [] for u in USERS} for s in SIDES}
    single: list[float] = []
    slots = {**env, "LLMSERVER_PARALLEL": str(max(USERS))}
    with contextlib.ExitStack() as stack:
        many = stack.enter_context(ServiceProcess("llmserver", "LLMSERVER_", env=slots))
        one = stack.enter_context(ServiceProcess("llmserver", "LLMSERVER_",
                                                 env={**env, "LLMSERVER_PARALLEL": "1"}))
        sides = {"engine": (many.url, many.pid), "one-slot": (one.url, one.pid)}
        if bins is not None:  # llama.cpp's own server, same slots and cache, same client
            peer = stack.enter_context(llamacpp_tools.server(
                bins["llama-server"], model, threads, max(USERS), max(USERS) * N_CTX, flash))
            sides["llama-server"] = (peer.url, peer.pid)
        for url, _ in sides.values():  # warm-up, not counted
            asyncio.run(_users(url, 0, 2, eos))
        # The prompt as the servers evaluate it (chat template included), for llama.cpp's tools
        prompt_tokens = _prompt_tokens(many.url)

        def tools_round(r: int) -> None:
            if bins is None:
                return
            for side, ctx in (("batched", max(USERS) * N_CTX), ("smallest", None)):
                speeds = llamacpp_tools.batched_decode(bins["llama-batched-bench"], model,
                                                       threads, USERS, prompt_tokens, ANSWER,
                                                       flash, ctx)
                for users in USERS:
                    res[side][users].append({"tps": speeds[users]})
                log.info("round %d, llama-batched-bench (%s cache): %s", r, side, speeds)
            single.append(llamacpp_tools.single_decode(bins["llama-bench"], model, threads,
                                                       ANSWER, flash))

        for r in range(1, rounds + 1):
            if r % 2 == 0:  # llama.cpp's tools before the servers in even rounds, after in odd
                tools_round(r)
            for k, users in enumerate(USERS):
                order = list(sides) if (r + k) % 2 else list(sides)[::-1]
                for side in order:
                    url, pid = sides[side]
                    res[side][users].append(asyncio.run(_users(url, r, users, eos, pid)))
                    log.info("round %d, %d users, %s: %.1f tok/s, slowest TTFT %.2f s", r,
                             users, side, res[side][users][-1]["tps_span"],
                             res[side][users][-1]["ttft_max"])
            if r % 2:
                tools_round(r)
            log.info("round %d/%d done", r, rounds)
    empty.cleanup()
    report = _report(res, single, threads, flash, prompt_tokens, rounds, why, out_dir)
    cheap, cheap_res = cheapstep.run(quick, bins, threads, flash)
    cheapstep.plot(cheap_res, out_dir / "llmserver-cheap.png")
    plot = "![cheap steps: tokens/s against users](benchmarks/llmserver-cheap.png)"
    fa = flash_race.run(quick, bins, model, threads, N_CTX, prompt_tokens, eos)
    plain = defaults.run(quick, bins, eos)
    return f"{report}\n{cheap}\n{plot}\n\n{fa}\n{plain}\n"


def _report(res: dict[str, dict[int, list[dict[str, float]]]], single: list[float],
            threads: int, flash: str, prompt_tokens: int, rounds: int, why: str,
            out_dir: Path) -> str:
    def col(side: str, users: int, key: str = "tps") -> list[float]:
        return [r[key] for r in res[side][users]]

    def ratio(users: int, side: str) -> list[float]:  # paired by round
        return [a / b for a, b in zip(col("engine", users), col(side, users), strict=False)]

    def ms(side: str, users: int, key: str) -> str:
        return spread([1000 * v for v in col(side, users, key)])

    speed, latency, flags = [], [], []
    for users in USERS:
        ours, peer = col("engine", users, "ttft_max"), col("llama-server", users, "ttft_max")
        if ours and peer and statistics.median(ours) > statistics.median(peer):
            flags.append(f"at {users} users the engine's slowest first token "
                         f"({1000 * statistics.median(ours):.0f} ms) comes later than "
                         f"`llama-server`'s ({1000 * statistics.median(peer):.0f} ms), median "
                         "over rounds")
        if ratio(users, "batched") and min(ratio(users, "batched")) > 1.0:
            flags.append(f"at {users} users the engine beat llama.cpp's own batched decode in "
                         "every round: the two measure different spans; read with care")
        speed.append(" | ".join([
            f"| {users}", *(spread(col(side, users)) for side in
                            ("batched", "smallest", "llama-server", "engine")),
            *(spread(ratio(users, side), "{:.2f}") for side in
              ("batched", "smallest", "llama-server")),
            spread(col("engine", users, "tps_span")),
            spread(col("one-slot", users, "tps_span"))]) + " |")
        latency.append(" | ".join([
            f"| {users}", ms("engine", users, "ttft_max"), ms("engine", users, "ttft_med"),
            ms("llama-server", users, "ttft_max"), ms("llama-server", users, "ttft_med"),
            ms("one-slot", users, "ttft_max"),
            f"{spread(col('engine', users, 'cpu'), '{:.1f}')}, "
            f"{spread(col('engine', users, 'loop_cpu'), '{:.2f}')}, "
            f"{spread(col('engine', users, 'client_cpu'), '{:.2f}')}"]) + " |")
    one_user = col("engine", 1)
    single_ratio = [a / b for a, b in zip(one_user, single, strict=False)]
    verdicts = _verdicts(single_ratio, {u: ratio(u, "batched") for u in USERS},
                         col("engine", max(USERS), "ttft_max"))
    _plot(res, single, out_dir / "llmserver.png")
    missing = f"\n> {why}; those columns are empty.\n" if why else ""
    flagged = "".join(f"\n> Flag: {f}.\n" for f in flags)
    slots = max(USERS)
    return f"""## llmserver: continuous batching against llama.cpp

SmolLM2-135M-Instruct Q4_1, {threads} threads and flash attention `{flash}` (llmserver's
`LLMSERVER_FLASH_ATTN`, given to llama.cpp's tools as `-fa`) everywhere, {ANSWER} answer tokens
per user
(end-of-sequence banned so every answer has exactly {ANSWER}), short prompts ({prompt_tokens}
tokens with the chat template, as the server counts them; `llama-batched-bench` evaluates
prompts of that length); {rounds} interleaved rounds (llama.cpp's tools before the servers in
even rounds, after them in odd ones), median [min–max].
The engine is llmserver with {slots} slots (`LLMSERVER_PARALLEL={slots}`), "one slot" the same
server with one (the one-request-at-a-time path), `llama-server` llama.cpp's own HTTP server
with {slots} slots and the same KV cache; all three are read by the same streaming client.
{missing}
Aggregate decode tokens/s, summed over users while every user decodes: for
`llama-batched-bench` its S_TG; over HTTP the tokens that arrive between the last user's
first token (every prompt read) and the first user's last token, over that window. "Whole
span" runs from the first first-token to the last token, so it also holds the reading of late
prompts and a tail with fewer users; the one-slot path, which answers in turn, has only that.
Ratios are paired per round.

`llama-batched-bench` runs with the servers' KV cache: {slots} sequences of {N_CTX} tokens.
The "smallest cache" run gives each sequence just the room its prompt and answer need (about
{prompt_tokens + ANSWER} cells), less than any server gives its requests. Without flash
attention a cache's size costs decode speed even where the tokens in it are the same ({slots}
sequences of 512 cells and more decoded 5–10% slower than of 256 here); with it the two runs
agree within noise. `LLMSERVER_FLASH_ATTN=off tinyllm bench llmserver` measures every side
without flash attention; the "flash attention on and off" table below races the two settings.

{header(SPEED)}
{chr(10).join(speed)}

Time to first token (ms), and CPU per generated token: the engine's whole process (llama.cpp's
threads included), its event-loop thread (HTTP, SSE) and this benchmark's own client process
(on a machine with few cores, the last two compete with decoding).

{header(LATENCY)}
{chr(10).join(latency)}

Single stream: `llama-bench` tg{ANSWER} {spread(single)} tok/s, the engine at 1 user
{spread(one_user)} tok/s, ratio {spread(single_ratio, '{:.2f}')}.

{verdicts}
{flagged}
![aggregate tokens/s and TTFT against users](benchmarks/llmserver.png)
"""


def _verdicts(single_ratio: list[float], batched: dict[int, list[float]],
              ttft_max: list[float]) -> str:
    """Met or missed for each target the section states (medians over rounds)."""
    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    def median(values: list[float]) -> float:
        return statistics.median(values) if values else math.nan

    lines = [f"- Single stream ≥ 0.9× `llama-bench`: {median(single_ratio):.2f}×, "
             f"{verdict(median(single_ratio) >= 0.9)}" if single_ratio else
             "- Single stream ≥ 0.9× `llama-bench`: not measured (no llama.cpp tools)"]
    for users in (u for u in (4, 8) if u in batched):
        value = median(batched[users])
        lines.append(f"- Aggregate at {users} users ≥ 0.9× `llama-batched-bench` (servers' "
                     f"cache): {value:.2f}×, {verdict(value >= 0.9)}" if batched[users] else
                     f"- Aggregate at {users} users: not measured (no llama.cpp tools)")
    slowest = median(ttft_max)
    lines.append(f"- Slowest first token at {max(USERS)} users under 1 s: "
                 f"{1000 * slowest:.0f} ms, {verdict(slowest < 1.0)}")
    return "\n".join(lines)


def _plot(res: dict[str, dict[int, list[dict[str, float]]]], single: list[float],
          path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    def med(side: str, users: int, key: str) -> float:
        values = [r[key] for r in res[side][users]]
        return statistics.median(values) if values else float("nan")

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    for side, label, style in [("batched", "llama-batched-bench", "k--"),
                               ("smallest", "llama-batched-bench, smallest cache", "k:"),
                               ("llama-server", "llama-server, 8 slots", "m-d"),
                               ("engine", "llmserver, 8 slots", "g-o"),
                               ("one-slot", "llmserver, 1 slot", "r-s")]:
        key = "tps_span" if side == "one-slot" else "tps"
        left.plot(USERS, [med(side, u, key) for u in USERS], style, label=label)
    if single:
        left.plot([1], [statistics.median(single)], "b^", label="llama-bench")
    left.set(xlabel="concurrent users", ylabel="aggregate decode tokens/s", xticks=USERS)
    left.legend(fontsize=8, loc="upper left")
    for side, label, style in [("engine", "8 slots", "g-o"),
                               ("llama-server", "llama-server", "m-d"),
                               ("one-slot", "1 slot", "r-s")]:
        right.plot(USERS, [med(side, u, "ttft_max") for u in USERS], style,
                   label=f"{label}, slowest")
        right.plot(USERS, [med(side, u, "ttft_med") for u in USERS], style.replace("-", ":"),
                   label=f"{label}, median", alpha=0.6)
    right.axhline(1.0, color="grey", lw=0.8)
    right.set(xlabel="concurrent users", ylabel="time to first token (s)", yscale="log",
              xticks=USERS)
    right.legend(fontsize=8)
    fig.suptitle("llmserver's batching engine vs llama.cpp and the one-slot path (SmolLM2)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
