"""Slots: one KV sequence each, remembering which tokens its cache holds."""

from __future__ import annotations

from dataclasses import dataclass, field

from .sampling import Sampler
from .task import Task
from .text import TextStream

IDLE, NEW, WAIT_COPY, PREFILL, GENERATE = "idle", "new", "wait_copy", "prefill", "generate"


@dataclass
class Slot:
    """Sequence `seq` of the context. `cache` is exactly the tokens whose keys and values
    sit at positions 0..len-1 of that sequence; it outlives the task, so the next request
    with the same beginning (a follow-up turn) starts where this one left off."""

    seq: int
    cache: list[int] = field(default_factory=list)
    state: str = IDLE
    task: Task | None = None
    choice: int = 0
    pending: list[int] = field(default_factory=list)  # prompt tokens still to evaluate
    next_token: int = -1  # sampled, to be fed at the next step
    row: int = -1  # batch row whose logits this slot samples from after the decode
    prompt_rows: list[tuple[int, int]] = field(default_factory=list)  # (row, position)
    sampler: Sampler | None = None
    text: TextStream | None = None
    generated: int = 0
    first_token_at: float = 0.0
    pieces: list[str] = field(default_factory=list)  # a whole answer's text so far

    def assign(self, task: Task, choice: int) -> None:
        self.task, self.choice = task, choice
        self.state = NEW if choice == 0 else WAIT_COPY
        self.sampler = task.samplers[choice]
        self.text = TextStream(task.stops)
        self.generated, self.next_token, self.row = 0, -1, -1
        self.pending, self.prompt_rows, self.pieces = [], [], []
        self.first_token_at = 0.0

    def release(self) -> None:
        self.task, self.sampler, self.text = None, None, None
        self.state = IDLE
        self.pending, self.prompt_rows, self.pieces = [], [], []


def common_prefix(a: list[int], b: list[int]) -> int:
    n = min(len(a), len(b))
    i = 0
    while i < n and a[i] == b[i]:
        i += 1
    return i


def route(free: list[Slot], task: Task) -> list[Slot]:
    """The `task.n` free slots for a task, the one whose cache shares the longest prefix
    with the prompt first (it evaluates the prompt; the others copy it)."""
    ranked = sorted(free, key=lambda s: common_prefix(s.cache, task.prompt), reverse=True)
    return ranked[:task.n]
