"""llmserver's own Prometheus metrics: tokens, tokens/s, queue depth, in flight."""

from __future__ import annotations

import time

from prometheus_client import Gauge

from services.metrics import Metrics

from .generate import Run


class Stats:
    def __init__(self, metrics: Metrics) -> None:
        self.prompt_tokens = metrics.counter("llm_prompt_tokens_total", "Prompt tokens evaluated.")
        self.tokens = metrics.counter("llm_tokens_generated_total", "Tokens generated.")
        self.generations = metrics.counter("llm_generations_total", "Generations run.")
        self.tps = Gauge("llm_tokens_per_second", "Decode speed of the last generation.",
                         registry=metrics.registry)
        self.in_flight = Gauge("llm_generations_in_flight", "Generations running now.",
                               registry=metrics.registry)
        self.queue_depth = Gauge("llm_queue_depth", "Requests waiting for the model.",
                                 registry=metrics.registry)

    def started(self, prompt_tokens: int) -> None:
        self.prompt_tokens.inc(prompt_tokens)
        self.generations.inc()
        self.in_flight.inc()

    def finished(self, run: Run) -> None:
        if run.counted:
            return
        run.counted = True
        self.in_flight.dec()
        self.tokens.inc(run.tokens)
        if run.first_token_at is not None and run.tokens > 1:
            elapsed = time.perf_counter() - run.first_token_at
            if elapsed > 0:
                self.tps.set((run.tokens - 1) / elapsed)
