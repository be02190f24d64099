"""The chatbot against llmserver direct, and the chatbot's database, in one run.

1. The gateway (:5000) against llmserver direct (:8000), same prompts, same server: with
   llama.cpp on its default thread count (all cores, as shipped) first, then on 1 thread.
   Single streams alternate between the paths (time to first token added, decode ratio);
   concurrent users (1..8) are repeated cells, reported with their spread.
2. The database's cost per browser chat turn: time to first token of `/api/chat` with the
   conversation stored in SQLite on disk against SQLite in memory, at 1 and 8 users; and the
   turn's own database writes measured in-process.
3. The sidebar's list and search at 10,000 conversations of 20 messages on SQLite (p50/p99).
"""

from __future__ import annotations

import concurrent.futures
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from llmserver.models import DEFAULT_MODEL
from tinyllm.procs import ServiceProcess

PROMPT = ("Here are some notes about the history of computing: Charles Babbage designed the "
          "Analytical Engine; Ada Lovelace wrote its first program; Alan Turing formalised "
          "computation. Write a long, detailed essay on this history.")
MAX_TOKENS = 96
USERS = [1, 2, 4, 8]
# None: llama.cpp's default (all cores), what ships. 1: leaves a core for the gateway and the
# client, the fairer race on 2 cores, where spinning llama.cpp threads stall every wake-up.
THREADS: list[int | None] = [None, 1]
TTFT_TARGET_MS = 5.0
# At 8 concurrent streams, through the chatbot against direct: aggregate tokens/s ratio, and
# how much later the slowest first token may come (paired by repeat).
AGG_TARGET = 0.9
SLOWEST_TARGET_MS = 150.0
DB_TARGET_MS = 5.0  # what the database adds to a turn's first token, and its writes before it
LIST_TARGET_MS = 50.0
DECODE_TARGET = 0.98  # a single stream's decode tokens/s through the gateway ÷ direct


def persona() -> dict[str, str]:
    """The system message the browser route puts before each question (the chatbot's
    defaults), so the OpenAI paths evaluate the same prompt as the browser's."""
    from chatbot.config import Settings
    from chatbot.templates import render

    return {"role": "system", "content": render("system", {}, Settings(auth="none"))}


def stream_once(client: httpx.Client, base: str, prompt: str,
                max_tokens: int = MAX_TOKENS) -> dict[str, Any]:
    """One streamed chat completion; times in seconds, tokens = content chunks."""
    body = {"model": DEFAULT_MODEL, "messages": [persona(), {"role": "user", "content": prompt}],
            "max_tokens": max_tokens, "temperature": 0, "stream": True}
    start = time.perf_counter()
    first = last = None
    tokens, finish, done, error = 0, None, False, None
    try:
        with client.stream("POST", base + "/v1/chat/completions", json=body) as response:
            if response.status_code != 200:
                return {"error": f"HTTP {response.status_code}", "truncated": False}
            for line in response.iter_lines():
                if not line.startswith("data:"):
                    continue
                data = line[5:].strip()
                if data == "[DONE]":
                    done = True
                    break
                chunk = json.loads(data)
                if "error" in chunk:
                    error = chunk["error"].get("code")
                    break
                for choice in chunk.get("choices") or []:
                    if (choice.get("delta") or {}).get("content"):
                        now = time.perf_counter()
                        first = first or now
                        last = now
                        tokens += 1
                    finish = choice.get("finish_reason") or finish
    except httpx.HTTPError as exc:
        error = type(exc).__name__
    end = time.perf_counter()
    ok = done and finish is not None and first is not None
    return {"ttft": (first - start) if first else None, "tokens": tokens, "end": end,
            "start": start, "decode_tps": (tokens - 1) / (last - first)
            if first and last and last > first else None,
            "error": error, "truncated": not ok and error is None}


def browser_once(client: httpx.Client, base: str, prompt: str) -> dict[str, Any]:
    """One browser chat turn (`POST /api/chat`, a new conversation), read to its end; its
    answer length is the chatbot's CHATBOT_ANSWER_TOKENS, tokens = token events."""
    start = time.perf_counter()
    first, tokens, done, error = None, 0, False, None
    try:
        with client.stream("POST", base + "/api/chat", json={"message": prompt}) as response:
            if response.status_code != 200:
                return {"error": f"HTTP {response.status_code}", "truncated": False}
            for line in response.iter_lines():
                if line.startswith("event: token"):
                    first = first or time.perf_counter()
                    tokens += 1
                elif line.startswith("event: done"):
                    done = True
                elif line.startswith("event: error"):
                    error = "error event"
    except httpx.HTTPError as exc:
        error = type(exc).__name__
    return {"ttft": (first - start) if first else None, "tokens": tokens, "error": error,
            "truncated": not done and error is None}


def concurrent_run(base: str, users: int, tag: str, max_tokens: int = MAX_TOKENS,
                   browser: bool = False) -> dict[str, Any]:
    def one(i: int) -> dict[str, Any]:
        prompt = f"[{tag} user {i}] {PROMPT}"
        if browser:
            return browser_once(clients[i], base, prompt)
        return stream_once(clients[i], base, prompt, max_tokens)

    with concurrent.futures.ThreadPoolExecutor(users) as pool:
        clients = [httpx.Client(timeout=600) for _ in range(users)]
        start = time.perf_counter()
        results = list(pool.map(one, range(users)))
        wall = time.perf_counter() - start
        for c in clients:
            c.close()
    ttfts = sorted(r["ttft"] for r in results if r.get("ttft") is not None)
    return {"users": users, "tps": sum(r.get("tokens", 0) for r in results) / wall,
            "p50": _pct(ttfts, 50), "p95": _pct(ttfts, 95),
            "max": ttfts[-1] if ttfts else float("nan"),
            "errors": sum(1 for r in results if r.get("error")),
            "truncated": sum(1 for r in results if r.get("truncated"))}


def _pct(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    k = max(0, min(len(values) - 1, round(q / 100 * (len(values) - 1))))
    return values[k]


def spread(values: list[float], fmt: str = "{:.1f}") -> str:
    """min / median / max"""
    if not values:
        return "n/a"
    return " / ".join(fmt.format(v) for v in (min(values), statistics.median(values),
                                              max(values)))


def gateway_side(threads: int | None, rounds: int, users: list[int], repeats: int,
                 max_tokens: int) -> dict[str, Any]:
    """Part 1 for one llama.cpp thread count."""
    env = {"LLMSERVER_QUEUE_SIZE": "16", "LLMSERVER_N_CTX": "2048"}
    if threads is not None:
        env["LLMSERVER_N_THREADS"] = str(threads)
    with ServiceProcess("llmserver", "LLMSERVER_", env=env) as llm, \
            ServiceProcess("chatbot", "CHATBOT_", env={
                "CHATBOT_LLM_URLS": llm.url + "/v1", "CHATBOT_QUEUE_SIZE": "32",
                "CHATBOT_RAG_URL": "http://127.0.0.1:9", "CHATBOT_AUTH": "none",
                "CHATBOT_ANSWER_TOKENS": str(max(16, max_tokens)), "CHATBOT_TEMPERATURE": "0",
                "CHATBOT_DATABASE_URL": "sqlite://"}) as bot, \
            httpx.Client(timeout=600) as client:
        paths = {"direct": llm.url, "gateway": bot.url}
        # The browser's route too, in the concurrent cells (its prompt adds the persona).
        cells = {**paths, "browser": bot.url}
        for base in paths.values():  # warm-up, not counted
            stream_once(client, base, "warm " + PROMPT, max_tokens)
        single: dict[str, list[dict[str, Any]]] = {"direct": [], "gateway": []}
        for i in range(rounds):
            order = list(paths.items()) if i % 2 == 0 else list(paths.items())[::-1]
            for name, base in order:
                # Each side its own question of the same length: the second side would
                # otherwise find the whole prompt in llmserver's prefix cache.
                single[name].append(stream_once(client, base, f"[{name[0]} round {i}] {PROMPT}",
                                                max_tokens))
        conc: dict[str, dict[int, list[dict[str, Any]]]] = {name: {} for name in cells}
        for r in range(repeats):
            for j, n in enumerate(users):  # interleaved: every path meets the same noise
                order = list(cells.items())
                order = order[(j + r) % len(order):] + order[:(j + r) % len(order)]
                for name, base in order:
                    conc[name].setdefault(n, []).append(concurrent_run(
                        base, n, f"{name[0]} rep{r} n{n}", max_tokens, name == "browser"))
    diffs = [(g["ttft"] - d["ttft"]) * 1000 for d, g in
             zip(single["direct"], single["gateway"], strict=True)
             if d.get("ttft") and g.get("ttft")]
    decode = [g["decode_tps"] / d["decode_tps"] for d, g in
              zip(single["direct"], single["gateway"], strict=True)
              if d.get("decode_tps") and g.get("decode_tps")]
    return {"threads": threads, "single": single, "conc": conc, "diffs": diffs,
            "decode": decode}


def db_side(rounds: int, repeats: int, tmp: Path) -> dict[str, Any]:
    """Part 2: /api/chat time to first token, SQLite on disk against SQLite in memory."""
    common = {"CHATBOT_RAG_URL": "http://127.0.0.1:9", "CHATBOT_AUTH": "none",
              "CHATBOT_ANSWER_TOKENS": "16", "CHATBOT_QUEUE_SIZE": "32",
              "CHATBOT_TEMPERATURE": "0"}
    # One llama.cpp thread: the race is between two chatbots, so leave them a core. A slot per
    # user: no one waits in llmserver's queue, whose order would swamp a database's milliseconds.
    with ServiceProcess("llmserver", "LLMSERVER_", env={"LLMSERVER_QUEUE_SIZE": "16",
                                                        "LLMSERVER_PARALLEL": "8",
                                                        "LLMSERVER_N_THREADS": "1"}) as llm:
        common["CHATBOT_LLM_URLS"] = llm.url + "/v1"
        with ServiceProcess("chatbot", "CHATBOT_", env={
                **common, "CHATBOT_DATABASE_URL": f"sqlite:///{tmp / 'turns.db'}"}) as disk, \
                ServiceProcess("chatbot", "CHATBOT_", env={
                    **common, "CHATBOT_DATABASE_URL": "sqlite://"}) as memory:
            # One client per side, made before timing (making one costs ~20 ms of TLS setup).
            limits = httpx.Limits(max_connections=16, max_keepalive_connections=16)
            sides = {name: httpx.Client(base_url=url, timeout=600, limits=limits)
                     for name, url in (("disk", disk.url), ("memory", memory.url))}
            for client in sides.values():
                turn_ttft(client, "warm-up")
            out: dict[str, dict[int, list[float]]] = {"disk": {}, "memory": {}}
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                for users in (1, 8):
                    for r in range(rounds if users == 1 else repeats):
                        order = list(sides.items()) if r % 2 == 0 else list(sides.items())[::-1]
                        for name, client in order:
                            # Each side its own question (same length): the second side of
                            # a round would otherwise find the whole prompt in llmserver's
                            # prefix cache and skip its evaluation.
                            tag = name[0].upper()
                            got = list(pool.map(lambda i, c=client, r=r, t=tag: turn_ttft(
                                c, f"{t}{r}.{i}: Say one word."), range(users)))
                            out[name].setdefault(users, []).append(statistics.median(got))
            for client in sides.values():
                client.close()
    return {**out, "rounds": rounds, "repeats": repeats}


def turn_ttft(client: httpx.Client, message: str) -> float:
    """Milliseconds from POST /api/chat (a new conversation) to its first token event.

    The answer is read to its end: a turn left generating after its first token would
    share llmserver with the next turn's prompt and add that overlap to its TTFT."""
    start = time.perf_counter()
    first = float("nan")
    with client.stream("POST", "/api/chat", json={"message": message}) as response:
        for line in response.iter_lines():
            if line.startswith("event: token") and first != first:
                first = (time.perf_counter() - start) * 1000
    return first


def run(out_dir: Path, quick: bool = False) -> str:
    import tempfile

    from bench.chatbot_store import run_store

    rounds, repeats = (4, 2) if quick else (10, 3)
    # A few milliseconds under TTFTs that vary by tens: many more pairs for the database.
    db_rounds, db_repeats = (4, 2) if quick else (60, 30)
    users = [1, 8] if quick else USERS
    max_tokens = 48 if quick else MAX_TOKENS
    sides = [gateway_side(t, rounds, users, repeats, max_tokens) for t in THREADS]
    tmp = Path(tempfile.mkdtemp(prefix="bench-chatbot-"))
    db_ttft = db_side(db_rounds, db_repeats, tmp)
    rows, writes, fill_s, n_conv = run_store(tmp, quick)
    _plot(sides, out_dir / "chatbot.png")
    return _report(sides, db_ttft, rows, writes, fill_s, n_conv, rounds, repeats, max_tokens)


def _target_verdict(name: str, users: int, ratios: list[float], later: list[float]) -> str:
    """Met or missed: aggregate ≥ AGG_TARGET × direct, slowest first token ≤ direct's +
    SLOWEST_TARGET_MS (medians over the repeats)."""
    ratio = statistics.median(ratios) if ratios else float("nan")
    delay = statistics.median(later) if later else float("nan")
    met = ratio >= AGG_TARGET and delay <= SLOWEST_TARGET_MS
    return (f"- {users} streams through {'/v1' if name == 'gateway' else 'the browser route'}: "
            f"aggregate {ratio:.2f}× direct (target ≥ {AGG_TARGET}), slowest first token "
            f"{delay:+.0f} ms (target ≤ +{SLOWEST_TARGET_MS:.0f}): "
            f"**{'met' if met else 'missed'}**")


def _verdict(value: float, target: float) -> str:
    return f"**met** (≤ {target:g})" if value <= target else \
        f"**missed** by {value - target:.1f} ms (target ≤ {target:g})"


def _median_interval(values: list[float], resamples: int = 2000) -> tuple[float, float]:
    """A 95% bootstrap interval of the median (fixed seed: the same data, the same words)."""
    import numpy as np

    data = np.asarray(values, dtype=float)
    picks = np.random.default_rng(0).integers(0, len(data), (resamples, len(data)))
    medians = np.median(data[picks], axis=1)
    return float(np.percentile(medians, 2.5)), float(np.percentile(medians, 97.5))


def _noisy_verdict(values: list[float], target: float) -> str:
    """Met or missed on the median of paired differences (ms), saying when the 95% interval
    of that median holds the target: then the measurement cannot tell."""
    if not values:
        return "n/a"
    verdict = _verdict(statistics.median(values), target)
    low, high = _median_interval(values)
    if low <= target <= high:
        verdict += f"; within noise (95% interval of the median {low:.1f} to {high:.1f} ms)"
    return verdict


def _ratio_verdict(values: list[float], target: float) -> str:
    if not values:
        return "n/a"
    median = statistics.median(values)
    return f"**met** (≥ {target:g})" if median >= target else \
        f"**missed** by {target - median:.3f} (target ≥ {target:g})"


def _report(sides: list[dict[str, Any]], db_ttft: dict[str, Any], rows: list[dict[str, Any]],
            writes: list[dict[str, float]], fill_s: float, n_conv: int, rounds: int,
            repeats: int, max_tokens: int, note: str = "") -> str:
    parts = ["## chatbot: the gateway (:5000) against llmserver direct (:8000), and its "
             "database\n", *([note + "\n"] if note else []),
             f"SmolLM2-135M-Instruct Q4_1, {max_tokens} answer tokens at temperature 0, "
             "streaming, each path its own question of the same length (order alternating, so "
             "neither finds the other's prompt in llmserver's prefix cache); the chatbot sends "
             "every request through its fair queue to the same llmserver, as many at once as "
             "llmserver advertises slots. The browser route (`POST /api/chat`, a new "
             "conversation each) puts its persona prompt before the question and stores the "
             "turn; the OpenAI paths send the same persona as their system message, so all "
             "three evaluate the same prompt. "
             f"Single streams: {rounds} rounds per path. Concurrent cells: {repeats} repeats, "
             "shown as min / median / max. Every stated target has a verdict on the median; "
             "where a 95% bootstrap interval of a median difference holds the target, the "
             "verdict says the measurement cannot tell (within noise).\n"]
    for side in sides:
        label = "default (all cores, as shipped)" if side["threads"] is None \
            else f"{side['threads']} thread"
        diffs, decode = side["diffs"], side["decode"]
        rows_c, verdicts = [], []
        for n in sorted(side["conc"]["direct"]):
            d = side["conc"]["direct"][n]
            cells = [f"| {n} | {spread([c['tps'] for c in d])}"]
            for name in ("gateway", "browser"):
                g = side["conc"][name][n]
                ratios = [b["tps"] / a["tps"] for a, b in zip(d, g, strict=True) if a["tps"]]
                later = [(b["max"] - a["max"]) * 1000 for a, b in zip(d, g, strict=True)]
                cells.append(f"{spread(ratios, '{:.2f}')} | {spread(later, '{:.0f}')} | "
                             f"{sum(c['errors'] for c in g)} / {sum(c['truncated'] for c in g)}")
                if n == max(side["conc"]["direct"]):
                    verdicts.append(_target_verdict(name, n, ratios, later))
            rows_c.append(" | ".join(cells) + " |")
        parts.append(f"""### llama.cpp threads: {label}

| metric | min / median / max | verdict |
|---|---|---|
| time to first token the gateway adds (paired, ms) | {spread(diffs)} | \
{_noisy_verdict(diffs, TTFT_TARGET_MS)} |
| decode tokens/s, gateway / direct | {spread(decode, '{:.3f}')} | \
{_ratio_verdict(decode, DECODE_TARGET)} |

| users | direct tok/s | /v1 ÷ direct tok/s | /v1 slowest first token − direct's (ms) | \
/v1 errors / truncated | browser ÷ direct tok/s | browser slowest first token − direct's (ms) \
| browser errors / truncated |
|---|---|---|---|---|---|---|---|
""" + "\n".join(rows_c) + "\n\n" + "\n".join(verdicts) + "\n")
    added = {n: [a - b for a, b in zip(db_ttft["disk"][n], db_ttft["memory"][n], strict=True)]
             for n in (1, 8)}
    db_rows = "\n".join(
        f"| {n} | {spread(db_ttft['memory'][n])} | {spread(db_ttft['disk'][n])} | "
        f"{spread(added[n])} | {_noisy_verdict(added[n], DB_TARGET_MS)} |"
        for n in (1, 8))
    w_rows = "\n".join(f"| {w['users']} | {w['first_p50']:.2f} | {w['first_p95']:.2f} | "
                       f"{w['rest_p50']:.2f} | {_verdict(w['first_p50'], DB_TARGET_MS)} |"
                       for w in writes)
    s_rows = "\n".join(f"| {r['query']} | {r['found']} | {r['p50']:.1f} | {r['p99']:.1f} | "
                       f"{_verdict(r['p99'], LIST_TARGET_MS)} |" for r in rows)
    parts.append(f"""### The database's cost per chat turn

Time to first token of a browser chat turn (`POST /api/chat`, a new conversation, 16 answer
tokens) with the conversation stored in SQLite on disk against SQLite in memory, same
llmserver (1 llama.cpp thread, a slot per user), alternating: {db_ttft["rounds"]} pairs at 1 user,
{db_ttft["repeats"]} pairs of concurrent batches at 8 users (each batch's median; those include
the 8 prompts' shared evaluation, which dwarfs the database). Each answer is read to its end
before the next turn, each side asks its own question of the same length (so neither finds
the other's prompt in llmserver's prefix cache), and each side keeps one HTTP client.

| users | memory TTFT (ms) | disk TTFT (ms) | disk − memory (ms, paired) | verdict |
|---|---|---|---|---|
{db_rows}

The turn's own writes, measured in-process (one database thread for SQLite): storing the
question and the empty answer before the first token; the partial save and the final save
after it.

| turns at once | before first token p50 (ms) | p95 (ms) | during/after p50 (ms) | \
verdict (before first token, p50) |
|---|---|---|---|---|
{w_rows}

### List and search at {n_conv:,} conversations × 20 messages (SQLite)

Filled in {fill_s:.0f} s (words drawn Zipf-like from 5,000); each query is the sidebar's
(50 newest, optionally only those with words starting with each query word), through the
repository in-process.

| query | found | p50 (ms) | p99 (ms) | verdict |
|---|---|---|---|---|
{s_rows}

![gateway vs direct](benchmarks/chatbot.png)
""")
    return "\n".join(parts)


def _plot(sides: list[dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(sides), figsize=(6 * len(sides), 3.4), squeeze=False)
    for ax, side in zip(axes[0], sides, strict=True):
        for name, color in (("direct", "#888"), ("gateway", "#3b7"), ("browser", "#37b")):
            cells = side["conc"][name]
            xs = sorted(cells)
            ax.plot(xs, [statistics.median(c["tps"] for c in cells[n]) for n in xs], "o-",
                    color=color, label=name)
            ax.fill_between(xs, [min(c["tps"] for c in cells[n]) for n in xs],
                            [max(c["tps"] for c in cells[n]) for n in xs], color=color,
                            alpha=0.2)
        label = "default threads" if side["threads"] is None else f"{side['threads']} thread"
        ax.set(title=f"aggregate tokens/s ({label})", xlabel="concurrent users",
               ylabel="tokens/s")
        ax.legend(fontsize=8)
    fig.suptitle("chatbot gateway vs llmserver direct (SmolLM2-135M, CPU): min-max band")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
