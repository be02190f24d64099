"""What the page shows under an answer on demand: its model, tokens, time to first token and
speed, from the stream itself (the upstream's usage chunk and when its tokens arrived)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any


@dataclass
class AnswerStats:
    model: str
    started: float = field(default_factory=time.monotonic)  # the question arrived
    first: float | None = None  # the first token of the answer or its reasoning
    last: float | None = None
    usage: dict[str, Any] = field(default_factory=dict)

    def feed(self, chunk: dict[str, Any], produced: str) -> None:
        """One upstream chunk; `produced` is the text (answer or reasoning) it carried."""
        if produced:
            self.last = time.monotonic()
            self.first = self.first or self.last
        self.usage = chunk.get("usage") or self.usage
        self.model = chunk.get("model") or self.model

    def view(self, sources: int, link: str | None) -> dict[str, Any]:
        """Tokens as the upstream counted them (None where it sent no usage); time to first
        token as the user waited for it (queue, documents and prompt included); tokens/s over
        the tokens after the first, from the first to the last."""
        tokens = self.usage.get("completion_tokens")
        speed = None
        if tokens and tokens > 1 and self.first is not None and self.last is not None \
                and self.last > self.first:
            speed = round((tokens - 1) / (self.last - self.first), 1)
        first_s = None if self.first is None else round(self.first - self.started, 3)
        return {"model": self.model, "prompt_tokens": self.usage.get("prompt_tokens"),
                "completion_tokens": tokens, "first_token_s": first_s, "tokens_per_s": speed,
                "sources": sources, "link": link}
