"""What the HTTP layer hands the engine (Task) and what it reads back (Event)."""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from .sampling import Sampler

_order = itertools.count()


@dataclass
class TokenLogprob:
    token: str
    logprob: float
    bytes: list[int]
    top: list[tuple[str, float, list[int]]]


@dataclass
class Event:
    """One thing that happened to a task, delivered in order on the request's loop.

    kind: "token" (text of choice `index`, maybe empty while held back, and its logprob),
    "prompt" (log-probabilities of the prompt's tokens, for `echo`), "done" (choice
    `index` finished with `finish_reason` after `tokens` tokens), "error" (the task
    failed; `error` says why).
    """

    kind: str
    index: int = 0
    text: str = ""
    logprob: TokenLogprob | None = None
    prompt: list[TokenLogprob | None] | None = None
    finish_reason: str | None = None
    tokens: int = 0
    error: BaseException | None = None


@dataclass(eq=False)  # identity: tasks are compared and hashed as objects
class Task:
    """One request: a tokenized prompt and how to continue it, `n` times."""

    prompt: list[int]
    max_tokens: int
    samplers: list[Sampler]
    sink: Callable[[Event], None]  # called from the engine thread; must be thread-safe
    stops: list[str] = field(default_factory=list)
    logprobs: int | None = None  # None: off; else how many top alternatives per token
    prompt_logprobs: bool = False  # echo: log-probabilities of the prompt's own tokens
    # The client reads the answer whole (not streamed): its tokens are handed over with its
    # end, in one wake-up of the request's event loop rather than one per step.
    whole: bool = False
    cancelled: threading.Event = field(default_factory=threading.Event)
    order: int = field(default_factory=lambda: next(_order))
    submitted: float = field(default_factory=time.perf_counter)
    reused: int = 0  # prompt tokens found in the slot's cache (set by the engine)
    open_choices: int = 0
    held: list[Event] = field(default_factory=list)  # tokens waiting for the stream interval
    sent_at: float = 0.0  # when the engine last handed this task's events over

    @property
    def n(self) -> int:
        return len(self.samplers)

    def cancel(self) -> None:
        """Stop at the next decode step; the slot is free for the next request then."""
        self.cancelled.set()

    def close(self) -> None:
        for sampler in self.samplers:
            sampler.close()

    def emit(self, event: Event) -> None:
        try:
            self.sink(event)
        except RuntimeError:  # the request's event loop is gone (server shutting down)
            pass

    def release_held(self) -> None:
        held, self.held = self.held, []
        for event in held:
            self.emit(event)


def info(text: str, logprob: float) -> tuple[str, float, list[int]]:
    return text, logprob, list(text.encode("utf-8"))


def token_logprob(text: str, logprob: float, top: list[tuple[str, float]]) -> TokenLogprob:
    return TokenLogprob(text, logprob, list(text.encode("utf-8")),
                        [info(t, lp) for t, lp in top])

