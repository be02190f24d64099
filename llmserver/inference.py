"""Chat and text completions: validation against the context, queueing, streaming."""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from typing import Any

from sse_starlette import EventSourceResponse

from services.errors import APIError, error_body

from .config import Settings
from .gate import Gate
from .generate import Run, run_in_thread, stream_in_thread
from .pool import LoadedModel, ModelPool
from .schemas import ChatCompletionRequest, CompletionRequest, SamplingParams
from .stats import Stats

log = logging.getLogger(__name__)
Disconnected = Callable[[], Awaitable[bool]]


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
    if isinstance(exc, ValueError) and "context window" in str(exc):
        return APIError(400, str(exc), code="context_length_exceeded")
    log.error("generation failed: %r", exc)
    return APIError(500, "Generation failed.", code="generation_failed")


class Inference:
    """The model pool behind the gate; one instance per app (app.state.inference)."""

    def __init__(self, settings: Settings, stats: Stats) -> None:
        self.settings = settings
        self.pool = ModelPool(settings)
        self.gate = Gate(settings.queue_size)
        self.stats = stats

    async def load_default(self) -> None:
        """Load the default model at start; /health says 503 until this is done."""
        await self.gate.acquire()
        try:
            await self.pool.get(self.settings.default_model)
            self.pool.state = "ok"
        except APIError as exc:
            self.pool.state, self.pool.error = "error", exc.message
        finally:
            self.gate.release()

    def _ready(self) -> None:
        if self.pool.state == "loading":
            raise APIError(503, "The model is still loading.", code="model_loading",
                           headers={"Retry-After": "2"})

    async def _prepare(
        self, req: SamplingParams, count: Callable[[LoadedModel], int]
    ) -> tuple[LoadedModel, int, int]:
        """Wait for the model, then check the prompt fits. Returns the gate held."""
        self._ready()
        self.pool.resolve(req.model)  # 404 before queueing, not after the wait
        await self.gate.acquire()
        try:
            model = await self.pool.get(req.model)
            prompt_tokens = await asyncio.to_thread(count, model)
            max_tokens = budget(prompt_tokens, req.limit(), self.settings.n_ctx)
        except BaseException:
            self.gate.release()
            raise
        return model, prompt_tokens, max_tokens

    async def chat(self, req: ChatCompletionRequest, disconnected: Disconnected) -> Any:
        messages = [{"role": m.role, "content": m.text()} for m in req.messages]
        model, prompt_tokens, max_tokens = await self._prepare(
            req, lambda mdl: mdl.count_chat(messages))
        run = Run(eos=model.llama.token_eos())
        kwargs = dict(messages=messages, max_tokens=max_tokens, **self._common(req, run))
        call = model.llama.create_chat_completion
        return await self._respond(req, model, run, prompt_tokens, disconnected,
                                   lambda stream: call(stream=stream, **kwargs))

    async def complete(self, req: CompletionRequest, disconnected: Disconnected) -> Any:
        prompt = str(req.prompt)
        model, prompt_tokens, max_tokens = await self._prepare(
            req, lambda mdl: mdl.count_text(prompt))
        run = Run(eos=model.llama.token_eos())
        kwargs = dict(prompt=prompt, max_tokens=max_tokens, **self._common(req, run))
        call = model.llama.create_completion
        return await self._respond(req, model, run, prompt_tokens, disconnected,
                                   lambda stream: call(stream=stream, **kwargs))

    def _common(self, req: SamplingParams, run: Run) -> dict[str, Any]:
        from llama_cpp import LogitsProcessorList

        params = req.sampling()
        params.setdefault("temperature", 0.8)
        return {"logits_processor": LogitsProcessorList([run.processor]), **params}

    async def _respond(self, req: SamplingParams, model: LoadedModel, run: Run,
                       prompt_tokens: int, disconnected: Disconnected,
                       call: Callable[[bool], Any]) -> Any:
        self.stats.started(prompt_tokens)
        if not req.stream:
            watcher = asyncio.create_task(_watch(disconnected, run))
            try:
                result = await run_in_thread(self.gate, lambda: call(False), run)
            except BaseException as exc:
                raise _llama_error(exc) from exc
            finally:
                watcher.cancel()
                self.stats.finished(run)
            result["model"] = model.name
            return result
        chunks = stream_in_thread(self.gate, lambda: call(True), run)
        try:
            first = await chunks.__anext__()
        except StopAsyncIteration:
            first = None
        except BaseException as exc:
            self.stats.finished(run)
            raise _llama_error(exc) from exc
        usage = req.stream_options.include_usage if req.stream_options else False
        events = self._events(first, chunks, model.name, run, prompt_tokens, usage)
        return EventSourceResponse(events, ping=15, sep="\n")

    async def _events(self, first: dict[str, Any] | None,
                      chunks: AsyncGenerator[dict[str, Any], None],
                      name: str, run: Run, prompt_tokens: int, usage: bool
                      ) -> AsyncIterator[dict[str, str]]:
        """SSE events: every chunk under one id, optional usage, then [DONE] (or an error)."""
        stream_id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        last: dict[str, Any] | None = None
        try:
            if first is not None:
                async for chunk in _prepend(first, chunks):
                    chunk["id"], chunk["model"] = stream_id, name
                    last = chunk
                    yield {"data": json.dumps(chunk)}
            if usage and last is not None:
                completion = max(run.tokens - 1, 0) if _finished_by_eos(last) else run.tokens
                yield {"data": json.dumps({
                    "id": stream_id, "object": last.get("object"), "created": last.get("created"),
                    "model": name, "choices": [],
                    "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
                              "total_tokens": prompt_tokens + completion}})}
            yield {"data": "[DONE]"}
        except APIError as exc:
            yield {"data": json.dumps(exc.body())}
        except Exception as exc:  # after the headers, errors travel as an SSE event
            yield {"data": json.dumps(error_body(_llama_error(exc).message, "server_error",
                                                 "generation_failed"))}
        finally:
            await chunks.aclose()
            self.stats.finished(run)


def _finished_by_eos(chunk: dict[str, Any]) -> bool:
    choices = chunk.get("choices") or [{}]
    return choices[0].get("finish_reason") == "stop"


async def _prepend(first: dict[str, Any], rest: AsyncIterator[dict[str, Any]]
                   ) -> AsyncIterator[dict[str, Any]]:
    yield first
    async for item in rest:
        yield item


async def _watch(disconnected: Disconnected, run: Run) -> None:
    """Cancel a non-streaming generation whose client went away."""
    while not run.cancel.is_set():
        if await disconnected():
            run.cancel.set()
            return
        await asyncio.sleep(0.25)

