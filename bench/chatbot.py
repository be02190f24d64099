"""The chatbot gateway against llmserver direct: same prompts, same server, one run.

Part 1 alternates single streams between the two paths and reports the time to first token
the gateway adds and its decode tokens/s ratio. Part 2 runs 1, 2, 4 and 8 concurrent users
through each path: aggregate tokens/s, time to first token p50/p95, errors and truncated
streams (a stream without finish_reason and [DONE]).
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
# One llama.cpp thread leaves a core for the gateway and the client: on 2 cores, two spinning
# llama.cpp threads make any other process's wake-up stall decoding, drowning what we measure.
LLM_THREADS = 1


def stream_once(client: httpx.Client, base: str, prompt: str) -> dict[str, Any]:
    """One streamed chat completion; times in seconds, tokens = content chunks."""
    body = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": prompt}],
            "max_tokens": MAX_TOKENS, "temperature": 0, "stream": True}
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


def concurrent_run(base: str, users: int, tag: str) -> dict[str, Any]:
    with concurrent.futures.ThreadPoolExecutor(users) as pool:
        clients = [httpx.Client(timeout=600) for _ in range(users)]
        start = time.perf_counter()
        results = list(pool.map(lambda i: stream_once(clients[i], base,
                                                      f"[{tag} user {i}] {PROMPT}"),
                                range(users)))
        wall = time.perf_counter() - start
        for c in clients:
            c.close()
    ttfts = sorted(r["ttft"] for r in results if r.get("ttft") is not None)
    return {"users": users, "tps": sum(r.get("tokens", 0) for r in results) / wall,
            "p50": _pct(ttfts, 50), "p95": _pct(ttfts, 95),
            "errors": sum(1 for r in results if r.get("error")),
            "truncated": sum(1 for r in results if r.get("truncated"))}


def _pct(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    k = max(0, min(len(values) - 1, round(q / 100 * (len(values) - 1))))
    return values[k]


def run(out_dir: Path, quick: bool = False) -> str:
    rounds = 4 if quick else 10
    env = {"LLMSERVER_QUEUE_SIZE": "16", "LLMSERVER_N_CTX": "2048",
           "LLMSERVER_N_THREADS": str(LLM_THREADS)}
    with ServiceProcess("llmserver", "LLMSERVER_", env=env) as llm, \
            ServiceProcess("chatbot", "CHATBOT_", env={
                "CHATBOT_LLM_URLS": llm.url + "/v1", "CHATBOT_QUEUE_SIZE": "32",
                "CHATBOT_RAG_URL": "http://127.0.0.1:9"}) as bot, \
            httpx.Client(timeout=600) as client:
        paths = {"direct": llm.url, "gateway": bot.url}
        for base in paths.values():  # warm-up, not counted
            stream_once(client, base, "warm " + PROMPT)
        hop: dict[str, list[float]] = {name: [] for name in paths}
        for _ in range(20 if quick else 60):  # the hop alone, no model noise
            for name, base in paths.items():
                start = time.perf_counter()
                client.get(base + "/v1/models").raise_for_status()
                hop[name].append(time.perf_counter() - start)
        single: dict[str, list[dict[str, Any]]] = {"direct": [], "gateway": []}
        for i in range(rounds):
            order = list(paths.items()) if i % 2 == 0 else list(paths.items())[::-1]
            for name, base in order:
                # A different first token per request, so llama.cpp's prompt cache never helps.
                single[name].append(stream_once(client, base, f"[{i} {name}] {PROMPT}"))
        conc: dict[str, list[dict[str, Any]]] = {"direct": [], "gateway": []}
        for j, n in enumerate(USERS):  # interleaved, so both paths meet the same noise
            order = list(paths.items()) if j % 2 == 0 else list(paths.items())[::-1]
            for name, base in order:
                conc[name].append(concurrent_run(base, n, f"{name}{n}"))
    return _report(single, conc, hop, rounds, out_dir)


def _report(single: dict[str, list[dict[str, Any]]], conc: dict[str, list[dict[str, Any]]],
            hop: dict[str, list[float]], rounds: int, out_dir: Path) -> str:
    def med(name: str, key: str) -> float:
        return statistics.median(r[key] for r in single[name] if r.get(key) is not None)

    ttft_d, ttft_g = med("direct", "ttft") * 1000, med("gateway", "ttft") * 1000
    # Rounds alternate, so the median of paired differences cancels slow drifts of the machine.
    added = statistics.median(g["ttft"] - d["ttft"] for d, g in
                              zip(single["direct"], single["gateway"], strict=True)
                              if d.get("ttft") and g.get("ttft")) * 1000
    tps_d, tps_g = med("direct", "decode_tps"), med("gateway", "decode_tps")
    hop_d, hop_g = (statistics.median(hop[n]) * 1000 for n in ("direct", "gateway"))
    _plot(single, conc, out_dir / "chatbot.png")
    rows = "\n".join(
        f"| {d['users']} | {d['tps']:.1f} | {g['tps']:.1f} | {g['tps'] / d['tps']:.3f} | "
        f"{d['p50'] * 1000:.0f} / {d['p95'] * 1000:.0f} | {g['p50'] * 1000:.0f} / "
        f"{g['p95'] * 1000:.0f} | {d['errors']} / {d['truncated']} | "
        f"{g['errors']} / {g['truncated']} |"
        for d, g in zip(conc["direct"], conc["gateway"], strict=True))
    return f"""## chatbot: the gateway (:5000) against llmserver direct (:8000)

SmolLM2-135M-Instruct Q4_1 on {LLM_THREADS} llama.cpp thread (so the gateway and the client
have a core of their own), {MAX_TOKENS} answer tokens at temperature 0, streaming, the same
prompts on both paths; the gateway sends every request through its fair queue to the same
llmserver. Single streams: {rounds} alternating rounds per path, medians.

| metric | direct | gateway | gateway effect |
|---|---|---|---|
| time to first token (ms) | {ttft_d:.1f} | {ttft_g:.1f} | {added:+.1f} ms, median of \
paired differences (target ≤ 5) |
| GET /v1/models, p50 (ms) | {hop_d:.2f} | {hop_g:.2f} | {hop_g - hop_d:+.2f} ms: the \
hop itself |
| decode tokens/s | {tps_d:.1f} | {tps_g:.1f} | ratio {tps_g / tps_d:.3f} (target ≥ 0.98) |

The machine has 2 cores, shared with other work: single numbers move by ±20 % between runs;
read the ratios. With llama.cpp on both cores, the gateway's per-token wake-ups cost decoding
speed here (a ratio of 0.73 to 1.06 across runs), which a GPU host does not see.

Concurrent users, one streamed answer each (llmserver generates one at a time; everyone else
waits in a queue, in llmserver's own on the direct path and in the gateway's on the other):

| users | direct tok/s | gateway tok/s | ratio | direct TTFT p50 / p95 (ms) \
| gateway TTFT p50 / p95 (ms) | direct errors / truncated | gateway errors / truncated |
|---|---|---|---|---|---|---|---|
{rows}

![gateway vs direct](benchmarks/chatbot.png)
"""


def _plot(single: dict[str, list[dict[str, Any]]], conc: dict[str, list[dict[str, Any]]],
          path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 3, figsize=(12, 3.4))
    for name, color in (("direct", "#888"), ("gateway", "#3b7")):
        axes[0].plot([r["ttft"] * 1000 for r in single[name] if r.get("ttft")], "o-",
                     color=color, label=name)
        axes[1].plot(USERS, [c["tps"] for c in conc[name]], "o-", color=color, label=name)
        axes[2].plot(USERS, [c["p95"] * 1000 for c in conc[name]], "o-", color=color,
                     label=name)
    axes[0].set(title="time to first token, single stream", xlabel="round", ylabel="ms")
    axes[1].set(title="aggregate tokens/s", xlabel="concurrent users", ylabel="tokens/s")
    axes[2].set(title="time to first token p95", xlabel="concurrent users", ylabel="ms")
    for ax in axes:
        ax.legend(fontsize=8)
    fig.suptitle("chatbot gateway vs llmserver direct (SmolLM2-135M, CPU)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
