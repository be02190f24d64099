"""A race of OpenAI servers on non-streaming `/v1/completions`: N users at once, each asking
for ANSWER tokens (end-of-sequence banned, so every answer is exactly that long), the same
prompts on every side, sides alternating in order round by round.

Used by the llmserver benchmark's "cheap step" section (a tiny model whose decode step costs
about what a small model's costs on a GPU, so the serving overhead per step decides) and by
the GPU check (`tinyllm bench gpu`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

from services.config import REPO_ROOT

log = logging.getLogger("tinyllm.bench")
# The tiny model: trained for a few steps only (its speed, not its text, is what counts).
TINY = {"vocab-size": 512, "embd": 64, "head": 4, "layer": 2, "ctx": 256, "iters": 20,
        "batch": 8, "seed": 1}
TINY_DIR = REPO_ROOT / "build" / "bench"  # gitignored
WORDS = ["the", "old", "light", "house", "stood", "by", "a", "grey", "sea", "and", "every",
         "night", "its", "keeper", "climbed", "up"]


def tiny_model(text: Path = Path("/usr/share/common-licenses/GPL-3")) -> Path:
    """The trainer's tiny model (embedding 64, 2 layers, vocabulary 512), made once."""
    name = "tiny-" + "-".join(f"{k[0]}{v}" for k, v in TINY.items())
    path = TINY_DIR / f"{name}.gguf"
    if path.is_file():
        return path
    TINY_DIR.mkdir(parents=True, exist_ok=True)
    if not text.is_file():  # any text will do: its speed, not its answers, is measured
        text = REPO_ROOT / "README.md"
    log.info("training the tiny model for the cheap-step race (about a minute)")
    args = [a for k, v in TINY.items() for a in (f"--{k}", str(v))]
    subprocess.run([sys.executable, "-m", "trainer", "--train-data", str(text), *args,
                    "--models-dir", str(TINY_DIR), "--model-out", path.name, "--no-progress",
                    "--eval-every", "0", "--checkpoint-out", str(TINY_DIR / "ckpt")],
                   check=True, capture_output=True)
    return path


def prompt(round_: int, user: int) -> str:
    """A short prompt, different for every round and user (no side reuses a cache)."""
    words = [WORDS[(round_ * 7 + user * 3 + i) % len(WORDS)] for i in range(6)]
    return f"{round_} {user} " + " ".join(words)


async def _one(url: str, model: str, text: str, answer: int, eos: int) -> int:
    """One non-streaming completion over a raw connection; returns its completion tokens."""
    request = {"model": model, "prompt": text, "max_tokens": answer, "temperature": 0}
    if eos >= 0:
        request["logit_bias"] = {str(eos): -100}
    body = json.dumps(request).encode()
    host, port = url.removeprefix("http://").rsplit(":", 1)
    reader, writer = await asyncio.open_connection(host, int(port))
    writer.write(b"POST /v1/completions HTTP/1.1\r\nHost: " + host.encode() +
                 b"\r\nContent-Type: application/json\r\nConnection: close\r\n"
                 b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
    data = await reader.read()
    writer.close()
    head, _, payload = data.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), data[:300]
    tokens = int(json.loads(payload)["usage"]["completion_tokens"])
    assert tokens == answer, (tokens, answer)
    return tokens


async def _users(url: str, model: str, round_: int, users: int, answer: int, eos: int,
                 repeat: int = 1) -> float:
    """`users` requests at once, `repeat` times in a row; aggregate tokens/s."""
    started, tokens = time.perf_counter(), 0
    for k in range(repeat):
        done = await asyncio.gather(*(_one(url, model, prompt(round_, 100 * k + u), answer, eos)
                                      for u in range(users)))
        tokens += sum(done)
    return tokens / (time.perf_counter() - started)


def race(sides: dict[str, tuple[str, str]], users: list[int], rounds: int, answer: int,
         eos: int, between: Callable[[int], None] | None = None, min_tokens: int = 0
         ) -> dict[str, dict[int, list[float]]]:
    """Aggregate tokens/s per side and user count, one value per round.

    Args:
        sides: name -> (base URL, model name to ask for).
        between: called after each round with its number (llama.cpp's tools run there).
        min_tokens: each value is measured over at least this many tokens (a batch of users
            repeated back to back), so a fast single request is not a 20 ms sample.
    """
    out: dict[str, dict[int, list[float]]] = {s: {u: [] for u in users} for s in sides}
    for url, model in sides.values():  # warm-up, not counted
        asyncio.run(_users(url, model, 0, min(4, max(users)), 16, eos))
    for r in range(1, rounds + 1):
        for k, n in enumerate(users):
            order = list(sides) if (r + k) % 2 else list(sides)[::-1]
            for side in order:
                url, model = sides[side]
                repeat = max(1, -(-min_tokens // (n * answer)))
                out[side][n].append(asyncio.run(_users(url, model, r, n, answer, eos, repeat)))
                log.info("round %d, %d users, %s: %.0f tok/s", r, n, side, out[side][n][-1])
        if between is not None:
            between(r)
    return out


def spread(values: list[float], fmt: str = "{:.0f}") -> str:
    if not values:
        return "n/a"
    return f"{fmt.format(statistics.median(values))} [{fmt.format(min(values))}–" \
           f"{fmt.format(max(values))}]"


def ratios(a: list[float], b: list[float]) -> list[float]:
    """Per-round ratios a/b (paired: both measured in the same round)."""
    return [x / y for x, y in zip(a, b, strict=False) if y]
