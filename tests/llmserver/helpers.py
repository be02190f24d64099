"""Helpers for llmserver tests: read /metrics, compare greedy answers."""

from __future__ import annotations

import httpx


def metric(url: str, name: str) -> float:
    """The value of an unlabelled metric (the sum over labels when it has some)."""
    text = httpx.get(url + "/metrics", timeout=10).text
    total, found = 0.0, False
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            total += float(line.rsplit(" ", 1)[1])
            found = True
    assert found, f"{name} not in /metrics"
    return total


# Batched matrix products and a re-used cache round differently from a lone, cold
# evaluation; at temperature 0 two runs may part only where the two best tokens are this
# close (in log-probability) in both runs.
NOISE = 0.15


def assert_same_or_near_tie(a: list[dict], b: list[dict]) -> None:
    """`a`, `b`: OpenAI chat logprob entries (token, logprob, top_logprobs >= 2) of two
    temperature-0 answers to one prompt. Equal, or they diverge at a near-tie."""
    tokens_a, tokens_b = [e["token"] for e in a], [e["token"] for e in b]
    if tokens_a == tokens_b:
        return
    i = next((k for k, (x, y) in enumerate(zip(tokens_a, tokens_b, strict=False)) if x != y),
             min(len(a), len(b)))
    assert i < min(len(a), len(b)), "one answer is a strict prefix of the other"
    for entry, other in ((a[i], tokens_b[i]), (b[i], tokens_a[i])):
        tops = {t["token"]: t["logprob"] for t in entry["top_logprobs"]}
        assert other in tops, f"token {i}: {other!r} not even a runner-up in {tops}"
        gap = entry["logprob"] - tops[other]
        assert gap < NOISE, f"token {i}: diverged with a gap of {gap:.3f} nats"
