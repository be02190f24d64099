"""llmserver over HTTP against llama-cpp-python in-process: same GGUF, same threads.

Rounds alternate between the two sides so both meet the same machine noise; the report
gives medians and the HTTP/in-process ratio for decode tokens/s, prompt tokens/s and
time to first token.
"""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx

from llmserver.models import DEFAULT_MODEL, packaged_models
from services.procs import ServiceProcess

# A long-ish prompt, made unique per round so the prompt cache never skips its evaluation.
PROMPT = ("You are a careful assistant. Here are some notes about the history of computing: "
          + "Charles Babbage designed the Analytical Engine; Ada Lovelace wrote its first "
            "program; Alan Turing formalised computation; ENIAC filled a room. " * 6
          + "Write a long, detailed essay on this history.")
MAX_TOKENS = 128


def _measure(chunks: Iterator[str]) -> dict[str, float]:
    """Time the first content chunk and the rest; a content chunk is one token here."""
    start = time.perf_counter()
    first = last = None
    count = 0
    for _ in chunks:
        now = time.perf_counter()
        first = first or now
        last = now
        count += 1
    assert first is not None and last is not None and count > 1
    return {"ttft": first - start, "decode_tps": (count - 1) / (last - first), "tokens": count}


def in_process(llama: object) -> Callable[[str], dict[str, float]]:
    def one(prompt: str) -> dict[str, float]:
        stream = llama.create_chat_completion(  # type: ignore[attr-defined]
            messages=[{"role": "user", "content": prompt}], max_tokens=MAX_TOKENS,
            temperature=0, stream=True)
        return _measure(c["choices"][0]["delta"]["content"] for c in stream
                        if c["choices"][0]["delta"].get("content"))
    return one


def over_http(url: str) -> Callable[[str], dict[str, float]]:
    client = httpx.Client(timeout=300)

    def one(prompt: str) -> dict[str, float]:
        body = {"model": DEFAULT_MODEL, "messages": [{"role": "user", "content": prompt}],
                "max_tokens": MAX_TOKENS, "temperature": 0, "stream": True}

        def chunks() -> Iterator[str]:
            with client.stream("POST", url + "/v1/chat/completions", json=body) as response:
                for line in response.iter_lines():
                    if not line.startswith("data:") or line.endswith("[DONE]"):
                        continue
                    delta = json.loads(line[5:])["choices"]
                    if delta and delta[0]["delta"].get("content"):
                        yield delta[0]["delta"]["content"]
        return _measure(chunks())
    return one


def run(out_dir: Path, quick: bool = False) -> str:
    from llama_cpp import Llama

    rounds = 3 if quick else 8
    threads = int(os.environ.get("LLMSERVER_N_THREADS") or os.cpu_count() or 1)
    path = packaged_models()[DEFAULT_MODEL]
    llama = Llama(model_path=str(path), n_ctx=2048, n_threads=threads,
                  n_threads_batch=threads, verbose=False)
    prompt_tokens = len(llama.tokenize(PROMPT.encode()))
    env = {"LLMSERVER_N_THREADS": str(threads), "LLMSERVER_N_CTX": "2048"}
    results: dict[str, list[dict[str, float]]] = {"in-process": [], "http": []}
    with ServiceProcess("llmserver", "LLMSERVER_", env=env) as server:
        sides = {"in-process": in_process(llama), "http": over_http(server.url)}
        for side in sides.values():  # warm-up, not counted
            side("0 " + PROMPT)
        for i in range(rounds):
            for name, side in sides.items():
                results[name].append(side(f"{i + 1} {name} {PROMPT}"))
    llama.close()
    return _report(results, prompt_tokens, threads, out_dir)


def _report(results: dict[str, list[dict[str, float]]], prompt_tokens: int, threads: int,
            out_dir: Path) -> str:
    def med(side: str, key: str) -> float:
        return statistics.median(r[key] for r in results[side])

    rows = []
    for label, key, scale, better in [("decode tokens/s", "decode_tps", 1, "higher"),
                                      ("prompt tokens/s", "prompt_tps", 1, "higher"),
                                      ("time to first token (ms)", "ttft", 1000, "lower")]:
        if key == "prompt_tps":
            for side in results:
                for r in results[side]:
                    r["prompt_tps"] = prompt_tokens / r["ttft"]
        a, b = med("in-process", key) * scale, med("http", key) * scale
        ratio = b / a if better == "higher" else a / b
        rows.append((label, a, b, ratio))
    _plot(rows, out_dir / "llmserver.png")
    table = "\n".join(f"| {label} | {a:.1f} | {b:.1f} | {ratio:.3f} |" for label, a, b, ratio
                      in rows)
    n = len(results["http"])
    return f"""## llmserver: HTTP against llama-cpp-python in-process

SmolLM2-135M-Instruct Q4_1, {threads} threads, a {prompt_tokens}-token prompt, {MAX_TOKENS}
answer tokens at temperature 0, streaming; {n} alternating rounds per side, medians.
Ratio is HTTP relative to in-process, oriented so that 1.0 means no overhead and above 0.95
meets the target (for time to first token: in-process / HTTP).

| metric | in-process | HTTP (llmserver) | ratio |
|---|---|---|---|
{table}

![llmserver vs in-process](benchmarks/llmserver.png)
"""


def _plot(rows: list[tuple[str, float, float, float]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(rows), figsize=(10, 3.2))
    for ax, (label, a, b, ratio) in zip(axes, rows, strict=True):
        ax.bar(["in-process", "HTTP"], [a, b], color=["#888", "#3b7"])
        ax.set_title(f"{label}\nratio {ratio:.3f}", fontsize=9)
    fig.suptitle("llmserver over HTTP vs llama-cpp-python in-process (SmolLM2, same threads)")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
