"""llmserver's own Prometheus metrics: tokens, tokens/s, prompt reuse, queue, slots."""

from __future__ import annotations

from prometheus_client import Gauge

from services.metrics import Metrics

from .engine import EngineStats


class Stats(EngineStats):
    """The engine reports into these from its thread (prometheus_client is thread-safe)."""

    def __init__(self, metrics: Metrics) -> None:
        self.prompt_tokens = metrics.counter("llm_prompt_tokens_total", "Prompt tokens evaluated.")
        self.reused_tokens = metrics.counter(
            "llm_prompt_tokens_reused_total",
            "Prompt tokens found in a slot's KV cache and not evaluated again.")
        self.tokens = metrics.counter("llm_tokens_generated_total", "Tokens generated.")
        self.generations = metrics.counter("llm_generations_total", "Generations run.")
        self.tps = Gauge("llm_tokens_per_second", "Decode speed of the last finished answer.",
                         registry=metrics.registry)
        self.in_flight = Gauge("llm_generations_in_flight", "Requests being answered now.",
                               registry=metrics.registry)
        self.queue_depth = Gauge("llm_queue_depth", "Requests waiting for a free slot.",
                                 registry=metrics.registry)
        self.slots_busy = Gauge("llm_slots_busy", "Slots decoding or reading a prompt now.",
                                registry=metrics.registry)

    def prompt(self, evaluated: int, reused: int) -> None:
        self.prompt_tokens.inc(evaluated)
        self.reused_tokens.inc(reused)

    def generated(self, tokens: int) -> None:
        self.tokens.inc(tokens)

    def finished(self, tokens: int, seconds: float) -> None:
        if seconds > 0:
            self.tps.set(tokens / seconds)
