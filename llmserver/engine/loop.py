"""The batch loop: one thread, one llama_decode per step for every running sequence.

Each step puts the next token of every generating slot into one batch, fills the rest of
the batch with prompt chunks of slots still reading their prompt (oldest request first,
at most `chunk` tokens each), decodes once, then samples for every slot that asked for
logits. A long prompt therefore costs running streams one chunk's time per step, never
the whole prompt. Requests beyond the slots wait in a bounded FIFO queue.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque

from services.errors import APIError

from .runtime import Runtime
from .sampling import logprobs
from .slots import GENERATE, NEW, PREFILL, WAIT_COPY, Slot, common_prefix, route
from .task import Event, Task, TokenLogprob, token_logprob

log = logging.getLogger(__name__)


class EngineStats:
    """What the engine reports; llmserver's metrics override these (thread-safe)."""

    def prompt(self, evaluated: int, reused: int) -> None: ...

    def generated(self, tokens: int) -> None: ...

    def finished(self, tokens: int, seconds: float) -> None: ...


class Engine:
    """Continuous batching over `parallel` slots of one Runtime."""

    def __init__(self, runtime: Runtime, parallel: int, queue_size: int, chunk: int,
                 stats: EngineStats | None = None, retry_after: int = 2,
                 stream_interval: float = 0.0) -> None:
        self.rt = runtime
        self.slots = [Slot(i) for i in range(parallel)]
        self.waiting: deque[Task] = deque()
        self.queue_size = queue_size
        self.chunk = max(1, min(chunk, runtime.n_batch))
        self.stats = stats or EngineStats()
        self.retry_after = retry_after
        self.lock = threading.Condition()
        self.closed = False
        self.steps = 0
        # Events of one step, handed over together after it (one wake-up of the reader's
        # event loop per step, not one per token), and the step's generated-token count.
        self.outbox: list[tuple[Task, Event]] = []
        # A task's tokens are handed over at most every `stream_interval` seconds (held in
        # between, in order); its first token, prompt and end go at once.
        self.stream_interval = stream_interval
        self.new_tokens = 0
        self.thread = threading.Thread(target=self._run, name="llm-engine", daemon=True)
        self.thread.start()

    # -- called from the event loop --------------------------------------------------
    @property
    def parallel(self) -> int:
        return len(self.slots)

    @property
    def queue_depth(self) -> int:
        return len(self.waiting)

    @property
    def busy(self) -> int:
        return sum(s.task is not None for s in self.slots)

    def submit(self, task: Task) -> None:
        """Start `task` in free slots, or queue it; 429 when the queue is full."""
        if task.n > self.parallel:
            raise APIError(400, f"n may be at most {self.parallel} (the server's parallel "
                           "slots).", code="invalid_value", param="n")
        with self.lock:
            if self.closed:
                raise APIError(503, "The model is being unloaded. Retry.", code="model_unloading",
                               headers={"Retry-After": "1"})
            if self.waiting or not self._assign(task):
                if len(self.waiting) >= self.queue_size:
                    raise APIError(429, "The server is busy: the request queue is full. "
                                   "Retry later.", code="queue_full",
                                   headers={"Retry-After": str(self.retry_after)})
                self.waiting.append(task)
            self.lock.notify()

    def close(self) -> None:
        """Stop the loop (running and queued tasks end with an error) and free llama.cpp."""
        with self.lock:
            self.closed = True
            self.lock.notify()
        self.thread.join()
        gone = APIError(503, "The model was unloaded.", code="model_unloading")
        for slot in self.slots:
            if slot.task is not None:
                self._fail(slot.task, gone)
        while self.waiting:
            self._fail(self.waiting.popleft(), gone)
        self.rt.close()

    # -- slot bookkeeping (under the lock) -------------------------------------------
    def _assign(self, task: Task) -> bool:
        free = [s for s in self.slots if s.task is None]
        if len(free) < task.n:
            return False
        task.open_choices = task.n
        for choice, slot in enumerate(route(free, task)):
            slot.assign(task, choice)
        return True

    def _admit(self) -> None:
        while self.waiting and self._assign(self.waiting[0]):
            self.waiting.popleft()

    def _release_task(self, task: Task) -> None:
        for slot in self.slots:
            if slot.task is task:
                slot.release()
        task.close()
        self._admit()

    def _fail(self, task: Task, error: BaseException) -> None:
        task.release_held()
        task.emit(Event("error", error=error))
        for slot in self.slots:
            if slot.task is task:
                self.rt.forget(slot.seq)
                slot.cache = []
        self._release_task(task)

    def _reap(self) -> None:
        """Tasks whose client went away: free their slots now, drop them from the queue."""
        for task in {s.task for s in self.slots if s.task is not None}:
            if task.cancelled.is_set():
                self._release_task(task)
        for task in [t for t in self.waiting if t.cancelled.is_set()]:
            self.waiting.remove(task)
            task.close()

    # -- the loop thread -------------------------------------------------------------
    def _run(self) -> None:
        while True:
            with self.lock:
                self._reap()
                while not self.closed and all(s.task is None for s in self.slots):
                    self.lock.wait()
                    self._reap()
                if self.closed:
                    return
                active = [s for s in self.slots if s.task is not None]
            try:
                self.step(active)
                self._flush()
            except Exception as exc:  # a failed step fails its tasks, never the loop
                self._flush()
                log.error("decode step failed: %r", exc)
                with self.lock:
                    for task in {s.task for s in active if s.task is not None}:
                        self._fail(task, exc)

    def step(self, active: list[Slot]) -> None:
        rt = self.rt
        rt.clear()
        reading = []  # slots with a prompt to start or to go on reading
        for slot in active:
            if slot.state == GENERATE:
                slot.row = rt.add(slot.next_token, len(slot.cache), slot.seq, True)
                slot.cache.append(slot.next_token)
            elif slot.state in (NEW, PREFILL):
                reading.append(slot)
        budget = rt.n_batch - rt.n_tokens
        for slot in sorted(reading, key=lambda s: s.task.order if s.task else 0):
            if slot.state == NEW:
                self._start(slot)
            if slot.state == PREFILL and budget > 0:
                budget -= self._feed_prompt(slot, budget)
        if rt.n_tokens == 0:
            return
        self.decode()
        self.steps += 1
        for slot in active:
            if slot.prompt_rows:
                self._prompt_logprobs(slot)
            if slot.row >= 0 and slot.state in (PREFILL, GENERATE) and not slot.pending:
                row, slot.row = slot.row, -1
                if slot.state == PREFILL and slot.task is not None and slot.task.n > 1:
                    self._copy_to_siblings(slot, row)
                self._sample(slot, row)

    def _flush(self) -> None:
        outbox, self.outbox = self.outbox, []
        now = time.perf_counter()
        for task, event in outbox:
            if event.kind == "token" and (task.whole or task.sent_at and
                                          now - task.sent_at < self.stream_interval):
                task.held.append(event)
                continue
            task.release_held()
            task.emit(event)
            task.sent_at = now
        if self.new_tokens:
            self.stats.generated(self.new_tokens)
            self.new_tokens = 0

    def decode(self) -> None:
        """One llama_decode of the batch built this step (a seam for fault tests)."""
        self.rt.decode()

    def _start(self, slot: Slot) -> None:
        """Reuse what the slot's cache shares with the prompt; evaluate only the rest."""
        task = slot.task
        assert task is not None
        keep = common_prefix(slot.cache, task.prompt)
        keep = min(keep, len(task.prompt) - 1)  # the last prompt token gives the logits
        if task.prompt_logprobs:
            keep = 0  # every prompt token's logits are needed
        self.rt.forget(slot.seq, keep)
        del slot.cache[keep:]
        slot.pending = task.prompt[keep:]
        task.reused = keep
        self.stats.prompt(len(slot.pending), keep)
        slot.state = PREFILL

    def _feed_prompt(self, slot: Slot, budget: int) -> int:
        task = slot.task
        assert task is not None
        take = min(len(slot.pending), budget, self.chunk)
        chunk, slot.pending = slot.pending[:take], slot.pending[take:]
        for j, token in enumerate(chunk):
            last = not slot.pending and j == take - 1
            pos = len(slot.cache)
            row = self.rt.add(token, pos, slot.seq, last or task.prompt_logprobs)
            if task.prompt_logprobs and pos + 1 < len(task.prompt):
                slot.prompt_rows.append((row, pos))
            slot.cache.append(token)
            if last:
                slot.row = row
        return take

    def _prompt_logprobs(self, slot: Slot) -> None:
        task = slot.task
        assert task is not None
        out: list[TokenLogprob | None] = []
        if slot.prompt_rows[0][1] == 0:  # nothing predicts the first token: no log-prob
            out.append(token_logprob(self._text(task.prompt[0]), math.nan, []))
        for row, pos in slot.prompt_rows:
            token = task.prompt[pos + 1]
            lp, top = logprobs(self.rt.logits(row), token, task.logprobs or 0)
            out.append(token_logprob(self._text(token), lp,
                                     [(self._text(t), v) for t, v in top]))
        slot.prompt_rows = []
        self.outbox.append((task, Event("prompt", prompt=out)))

    def _copy_to_siblings(self, slot: Slot, row: int) -> None:
        for other in self.slots:
            if other.task is slot.task and other.state == WAIT_COPY:
                self.rt.copy(slot.seq, other.seq)
                other.cache = list(slot.cache)
                other.state = GENERATE
                self._sample(other, row)

    def _text(self, token: int) -> str:
        return self.rt.piece(token).decode("utf-8", "replace")

    def _sample(self, slot: Slot, row: int) -> None:
        task, sampler, text = slot.task, slot.sampler, slot.text
        assert task is not None and sampler is not None and text is not None
        token = sampler.sample(self.rt.ctx, row)
        if not slot.first_token_at:
            slot.first_token_at = time.perf_counter()
        lp = None
        if task.logprobs is not None:
            value, top = logprobs(self.rt.logits(row), token, task.logprobs)
            lp = token_logprob(self._text(token), value, [(self._text(t), v) for t, v in top])
        if self.rt.is_eog(token):
            self._finish(slot, "stop", text.flush())
            return
        slot.generated += 1
        self.new_tokens += 1
        piece, stopped = text.feed(self.rt.piece(token))
        if stopped:
            self._finish(slot, "stop", piece, lp)
        elif slot.generated >= task.max_tokens:
            self._finish(slot, "length", piece + text.flush(), lp)
        else:
            if task.whole and lp is None:  # read whole: the text goes with the end, joined
                slot.pieces.append(piece)
            else:
                self.outbox.append((task, Event("token", slot.choice, piece, logprob=lp)))
            slot.next_token = token
            slot.state = GENERATE

    def _finish(self, slot: Slot, reason: str, tail: str, lp: TokenLogprob | None = None
                ) -> None:
        task = slot.task
        assert task is not None
        if slot.pieces:
            tail, slot.pieces = "".join(slot.pieces) + tail, []
        if tail or lp is not None:
            self.outbox.append((task, Event("token", slot.choice, tail, logprob=lp)))
        self.outbox.append((task, Event("done", slot.choice, finish_reason=reason,
                                        tokens=slot.generated)))
        if slot.generated > 1:
            self.stats.finished(slot.generated - 1, time.perf_counter() - slot.first_token_at)
        with self.lock:
            slot.release()
            task.open_choices -= 1
            if task.open_choices == 0:
                task.close()
            self._admit()

