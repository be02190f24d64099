"""Chat and text completions: prompt and limits, a task for the engine, OpenAI answers.

The engine decodes; this module only prepares tasks, submits them and turns their events
into responses (whole, or streamed as SSE).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import weakref
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from sse_starlette import EventSourceResponse

from services import thinking
from services.errors import APIError, error_body

from . import structured
from .config import Settings
from .engine import Event, Sampler, SamplingConfig, Task
from .engine.sampling import DEFAULT_SEED
from .pool import LoadedModel, ModelPool
from .responses import ChatShape, Choice, CompletionShape, reasoning_delta, sse, usage
from .schemas import ChatCompletionRequest, CompletionRequest, SamplingParams
from .stats import Stats

log = logging.getLogger(__name__)
# Returns once the client has gone away (it waits on the connection; nothing polls).
Disconnected = Callable[[], Awaitable[None]]


def budget(prompt_tokens: int, requested: int | None, n_ctx: int) -> int:
    """Tokens the answer may use; 400 `context_length_exceeded` when nothing fits."""
    if prompt_tokens >= n_ctx:
        raise APIError(400, f"This model's maximum context length is {n_ctx} tokens, but the "
                       f"prompt has {prompt_tokens} tokens.", code="context_length_exceeded",
                       param="messages")
    room = n_ctx - prompt_tokens
    if requested is None:
        return room
    if requested > room:
        raise APIError(400, f"This model's maximum context length is {n_ctx} tokens. You "
                       f"requested {prompt_tokens + requested} tokens ({prompt_tokens} in the "
                       f"prompt, {requested} for the completion).",
                       code="context_length_exceeded", param="max_tokens")
    return requested


def _llama_error(exc: BaseException) -> APIError:
    if isinstance(exc, APIError):
        return exc
    log.error("generation failed: %r", exc)
    return APIError(500, "Generation failed.", code="generation_failed")


T = TypeVar("T")
# Prompts shorter than this are tokenized on the event loop: tens of microseconds, less than
# the hop to a worker thread and back costs on a machine whose cores are decoding.
INLINE_CHARS = 4096


async def _work(small: bool, fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` right here when it is small work, else in a worker thread."""
    return fn(*args) if small else await asyncio.to_thread(fn, *args)


class Mailbox:
    """Engine thread to one event loop: events pile up here and one wake-up of the loop
    delivers all that came meanwhile (a decode step's tokens for every stream), instead of
    one cross-thread call per token."""

    _boxes: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Mailbox] = \
        weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.items: deque[tuple[asyncio.Queue[Event], Event]] = deque()
        self.lock = threading.Lock()
        self.scheduled = False

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> Mailbox:
        box = cls._boxes.get(loop)
        if box is None:
            box = cls._boxes[loop] = cls(loop)
        return box

    def post(self, queue: asyncio.Queue[Event], event: Event) -> None:  # engine thread
        self.items.append((queue, event))
        with self.lock:
            if self.scheduled:  # a delivery is pending; it will take this one too
                return
            self.scheduled = True
        self.loop.call_soon_threadsafe(self._deliver)

    def _deliver(self) -> None:  # event loop
        with self.lock:
            self.scheduled = False  # from here on a new post schedules a new delivery
        items = self.items
        while items:
            queue, event = items.popleft()
            queue.put_nowait(event)


class Job:
    """A submitted task seen from its request: its events, in order, and its cleanup."""

    def __init__(self, inference: Inference, model: LoadedModel) -> None:
        self.inference = inference
        self.model = model
        self.mailbox = Mailbox.of(asyncio.get_running_loop())
        self.events: asyncio.Queue[Event] = asyncio.Queue()
        self.task: Task | None = None
        self.closed = False

    def put(self, event: Event) -> None:  # engine thread
        self.mailbox.post(self.events, event)

    async def next(self) -> Event:
        event = await self.events.get()
        if event.kind == "error":
            raise _llama_error(event.error or RuntimeError("unknown"))
        return event

    def close(self) -> None:
        """Cancel what still runs (a client gone), return the model lease; idempotent."""
        if self.closed:
            return
        self.closed = True
        if self.task is not None:
            self.task.cancel()
            self.inference.stats.in_flight.dec()
        self.inference.pool.release(self.model)


@dataclass
class Streamed:
    """A streamed answer: its job (to close when done) and its chunks."""

    job: Job
    chunks: AsyncIterator[dict[str, Any] | bytes]


class Inference:
    """The model pool and its engines; one instance per app (app.state.inference)."""

    def __init__(self, settings: Settings, stats: Stats) -> None:
        self.settings = settings
        self.stats = stats
        self.pool = ModelPool(settings, stats)

    async def load_default(self) -> None:
        """Load the default model at start; /health says 503 until this is done."""
        try:
            self.pool.release(await self.pool.acquire(self.settings.default_model))
            self.pool.state = "ok"
        except APIError as exc:
            self.pool.state, self.pool.error = "error", exc.message

    def _ready(self) -> None:
        if self.pool.state == "loading":
            raise APIError(503, "The model is still loading.", code="model_loading",
                           headers={"Retry-After": "2"})

    # -- preparing a task ------------------------------------------------------------
    def _sampling(self, req: SamplingParams, grammar: str | None, model: LoadedModel
                  ) -> SamplingConfig:
        cfg = SamplingConfig(**req.sampling(), grammar=grammar)
        if req.temperature is None:
            cfg.temperature = 0.8
        if req.seed is None:
            cfg.seed = self.settings.seed if self.settings.seed >= 0 else DEFAULT_SEED
        n_vocab = model.engine.rt.n_vocab
        for key, bias in (req.logit_bias or {}).items():
            if int(key) >= n_vocab:
                raise APIError(400, f"logit_bias token {key} is outside the vocabulary.",
                               code="invalid_value", param="logit_bias")
            cfg.logit_bias[int(key)] = bias
        return cfg

    @staticmethod
    def _samplers(cfg: SamplingConfig, model: LoadedModel, n: int) -> list[Sampler]:
        rt = model.engine.rt
        samplers: list[Sampler] = []
        try:
            for i in range(n):
                seed = cfg.seed if cfg.seed == DEFAULT_SEED else cfg.seed + i
                samplers.append(Sampler(SamplingConfig(**{**cfg.__dict__, "seed": seed}),
                                        rt.vocab, rt.n_vocab))
        except ValueError as exc:
            for sampler in samplers:
                sampler.close()
            raise APIError(400, f"The output constraint is invalid: {exc}.",
                           code="invalid_value", param="response_format") from exc
        return samplers

    async def _submit(self, req: SamplingParams, model: LoadedModel, prompt: list[int],
                      stops: list[str], grammar: str | None, logprobs: int | None,
                      prompt_logprobs: bool = False) -> Job:
        max_tokens = budget(len(prompt), req.limit(), model.n_ctx)
        cfg = self._sampling(req, grammar, model)
        job = Job(self, model)
        samplers = await _work(grammar is None and req.n <= 4, self._samplers, cfg, model, req.n)
        task = Task(prompt, max_tokens, samplers, job.put, stops, logprobs, prompt_logprobs,
                    whole=not req.stream)
        try:
            model.engine.submit(task)
        except BaseException:
            task.close()
            raise
        job.task = task
        self.stats.generations.inc()
        self.stats.in_flight.inc()
        return job

    async def _start(self, req: SamplingParams, prepare: Callable[[LoadedModel], Any]
                     ) -> tuple[LoadedModel, Job]:
        """Lease the model, then `prepare(model)` submits; the lease goes with the job."""
        self._ready()
        self.pool.resolve(req.model)  # 404 before anything else
        model = await self.pool.acquire(req.model)
        try:
            self.pool.keep(model, req.keep_alive)
            return model, await prepare(model)
        except BaseException:
            self.pool.release(model)
            raise

    # -- chat ------------------------------------------------------------------------
    async def chat(self, req: ChatCompletionRequest, disconnected: Disconnected) -> Any:
        """A chat.completion, or its chunks streamed as SSE."""
        run = await self.chat_run(req, disconnected)
        return run if isinstance(run, dict) else _sse(run.job, run.chunks)

    async def chat_run(self, req: ChatCompletionRequest, disconnected: Disconnected,
                       frames: bool = True) -> dict[str, Any] | Streamed:
        """The chat.completion, or the running job and its chunks (as dicts, or some as
        ready SSE bytes when `frames`); the caller closes a streamed job."""
        plan = structured.plan(req)
        top = (req.top_logprobs or 0) if req.logprobs else None

        async def prepare(model: LoadedModel) -> Job:
            messages = plan.messages
            if model.system_prompt and not any(m.get("role") == "system" for m in messages):
                messages = [{"role": "system", "content": model.system_prompt}, *messages]
            small = sum(len(str(m.get("content") or "")) for m in messages) < INLINE_CHARS
            prompt = await _work(small, model.chat_tokens, messages)
            stops = list(req.stop or []) + ([model.eos_text()] if model.eos_text() else [])
            return await self._submit(req, model, prompt, stops, plan.grammar, top)

        model, job = await self._start(req, prepare)
        assert job.task is not None
        shape = ChatShape(model.name, req.logprobs)
        # Reasoning apart, unless a grammar holds the answer to its form from the first token.
        split = req.reasoning_format != "none" and plan.grammar is None
        opened = split and thinking.opens_block(model.llama.detokenize(
            job.task.prompt[-8:], special=True).decode("utf-8", "ignore"))
        choices = [Choice(i, plan.tools, plan.forced,
                          thinking.ThinkSplitter(opened, leading=True) if split else None)
                   for i in range(req.n)]
        prompt_tokens = len(job.task.prompt)
        if not req.stream:
            try:
                await _collect(job, choices, disconnected)
            finally:
                job.close()
            return shape.whole(choices, usage(prompt_tokens, choices))
        first = await _first(job, disconnected)
        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        async def chunks() -> AsyncIterator[dict[str, Any] | bytes]:
            for c in choices:
                yield shape.delta(c.index, {"role": "assistant", "content": ""})
            async for event in _events(job, first, len(choices)):
                choice = choices[event.index]
                if event.kind == "token":
                    text = choice.add(event)
                    lps = [event.logprob] if req.logprobs and event.logprob else None
                    if choice.thought:  # a token's logprobs go with its answer text, if any
                        thought = choice.take_thought()
                        yield (shape.thought(choice.index, thought) if frames and not lps
                               else shape.delta(choice.index, reasoning_delta(thought),
                                                logprobs=None if text else lps))
                        lps = lps if text else None
                    if lps:
                        yield shape.delta(choice.index, {"content": text}, logprobs=lps)
                    elif text:
                        yield (shape.content(choice.index, text) if frames
                               else shape.delta(choice.index, {"content": text}))
                elif event.kind == "done":
                    tail = choice.done(event)
                    if choice.thought:
                        yield shape.delta(choice.index, reasoning_delta(choice.take_thought()))
                    if tail:
                        yield shape.delta(choice.index, {"content": tail})
                    if choice.tool_call is not None:
                        yield shape.delta(choice.index,
                                          {"tool_calls": [{"index": 0, **choice.tool_call}]})
                    yield shape.delta(choice.index, {}, choice.finish_reason)
            if include_usage:
                yield shape.chunk([], usage=usage(prompt_tokens, choices))

        return Streamed(job, chunks())

    # -- text completions ------------------------------------------------------------
    async def complete(self, req: CompletionRequest, disconnected: Disconnected) -> Any:
        text = str(req.prompt)
        top = req.logprobs

        async def prepare(model: LoadedModel) -> Job:
            small = len(text) < INLINE_CHARS
            prompt = await _work(small, model.tokenize, text, True) if text else \
                [int(model.llama.token_bos())]
            return await self._submit(req, model, prompt, list(req.stop or []), None, top,
                                      prompt_logprobs=req.echo and top is not None)

        model, job = await self._start(req, prepare)
        assert job.task is not None
        shape = CompletionShape(model.name, top)
        choices = [Choice(i) for i in range(req.n)]
        prompt_tokens = len(job.task.prompt)
        echo = text if req.echo else ""
        if not req.stream:
            try:
                prompt_lps = await _collect(job, choices, disconnected)
            finally:
                job.close()
            lps = [shape.logprobs(list(prompt_lps or []) + list(c.logprobs), 0)
                   if top is not None else None for c in choices]
            return shape.whole([echo + c.text for c in choices], choices, lps,
                               usage(prompt_tokens, choices))
        first = await _first(job, disconnected)
        include_usage = bool(req.stream_options and req.stream_options.include_usage)

        async def chunks() -> AsyncIterator[dict[str, Any] | bytes]:
            offsets = [0] * len(choices)
            if echo and first.kind != "prompt":
                for c in choices:
                    yield shape.chunk(c.index, echo)
                    offsets[c.index] = len(echo)
            async for event in _events(job, first, len(choices)):
                choice = choices[event.index]
                if event.kind == "prompt":
                    for c in choices:
                        lp = shape.logprobs(list(event.prompt or []), 0)
                        yield shape.chunk(c.index, echo, logprobs=lp)
                        offsets[c.index] = len(echo)
                elif event.kind == "token":
                    piece = choice.add(event)
                    lp = None
                    if top is not None and event.logprob is not None:
                        lp = shape.logprobs([event.logprob], offsets[choice.index])
                    offsets[choice.index] += len(piece)
                    if lp:
                        yield shape.chunk(choice.index, piece, logprobs=lp)
                    elif piece:
                        yield shape.text(choice.index, piece)
                elif event.kind == "done":
                    yield shape.chunk(choice.index, choice.done(event), choice.finish_reason)
            if include_usage:
                yield {**shape.chunk(0, ""), "choices": [],
                       "usage": usage(prompt_tokens, choices)}

        return _sse(job, chunks())


async def _first(job: Job, disconnected: Disconnected) -> Event:
    """The first event, before any header is sent: an early failure is a plain error, and
    a client that leaves while its request waits for a slot leaves the queue."""
    watcher = asyncio.create_task(_watch(disconnected, job))
    try:
        return await job.next()
    except BaseException:
        job.close()
        raise
    finally:
        watcher.cancel()


async def _events(job: Job, first: Event, n: int) -> AsyncIterator[Event]:
    """Every event of the job until each of its `n` choices is done."""
    event: Event | None = first
    open_choices = n
    while open_choices:
        if event is None:
            event = await job.next()
        if event.kind == "done":
            open_choices -= 1
        yield event
        event = None


async def _collect(job: Job, choices: list[Choice], disconnected: Disconnected) -> Any:
    """A whole answer; cancelled at the next step if the client goes away meanwhile."""
    watcher = asyncio.create_task(_watch(disconnected, job))
    prompt = None
    try:
        open_choices = len(choices)
        while open_choices:
            event = await job.next()
            if event.kind == "token":
                choices[event.index].add(event)
            elif event.kind == "prompt":
                prompt = event.prompt
            elif event.kind == "done":
                choices[event.index].done(event)
                open_choices -= 1
    finally:
        watcher.cancel()
    return prompt


class _EventStream(EventSourceResponse):
    async def _send_with_timeout(self, send: Any, message: Any) -> None:
        # No per-send deadline is set, so skip the cancel scope sse_starlette opens around
        # every send (one per token). Its heartbeat and disconnect handling stay as they are.
        if self.send_timeout is None:
            await send(message)
        else:
            await super()._send_with_timeout(send, message)


def _sse(job: Job, chunks: AsyncIterator[dict[str, Any] | bytes]) -> EventSourceResponse:
    # Events go out as ready-made bytes (sse_starlette passes bytes through untouched).
    async def events() -> AsyncIterator[bytes]:
        # Events that arrived together (a step's tokens, or those the stream interval held)
        # go out in one write.
        ready: list[bytes] = []
        try:
            async for chunk in chunks:
                ready.append(chunk if isinstance(chunk, bytes) else sse(chunk))
                if job.events.empty():
                    yield b"".join(ready)
                    ready = []
            ready.append(b"data: [DONE]\n\n")
            yield b"".join(ready)
        except APIError as exc:  # after the headers, errors travel as an SSE event
            yield b"".join(ready) + sse(exc.body())
        except Exception as exc:
            yield b"".join(ready) + sse(error_body(_llama_error(exc).message, "server_error",
                                                   "generation_failed"))
        finally:
            job.close()

    return _EventStream(events(), ping=15, sep="\n")


async def _watch(disconnected: Disconnected, job: Job) -> None:
    """Cancel a generation whose client went away, at once (no polling: a poll every
    quarter second per request was a steady load on the event loop with many waiting)."""
    await disconnected()
    if not job.closed:
        job.close()
        job.events.put_nowait(Event("error", error=APIError(
            499, "The client closed the request.", code="client_closed")))
