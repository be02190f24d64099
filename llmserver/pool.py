"""Which models exist (rescanned on demand) and which are loaded, each with its engine.

A request holds a lease on its model from the first token count to the last event it
sends; a model is unloaded only once its leases are gone, so neither `/tokenize` nor a
generation can ever touch a model that is being unloaded.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.errors import APIError

from . import backend
from .config import Settings
from .engine import Engine, EngineStats, Runtime
from .models import discover

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """One model in memory: Llama (weights, tokenizer, template) and the engine on it."""

    name: str
    path: Path
    llama: Any
    engine: Engine
    n_ctx: int  # tokens one request may use: min(LLMSERVER_N_CTX, the trained context)
    formatter: Any = None  # Jinja2ChatFormatter from the GGUF's template, when it has one
    loaded_at: float = field(default_factory=time.time)
    leases: int = 0
    drained: asyncio.Event = field(default_factory=asyncio.Event)

    def tokenize(self, text: str, add_bos: bool) -> list[int]:
        return self.llama.tokenize(text.encode("utf-8"), add_bos=add_bos, special=True)

    def count_text(self, text: str) -> int:
        return len(self.tokenize(text, True))

    def render_chat(self, messages: list[dict[str, Any]], **extra: Any) -> str:
        """The prompt the chat template makes of `messages` (a plain layout without one)."""
        if self.formatter is None:
            lines = [f"{m['role']}: {m.get('content') or ''}" for m in messages]
            return "\n".join(lines) + "\nassistant:"
        return self.formatter(messages=messages, **extra).prompt

    def chat_tokens(self, messages: list[dict[str, Any]], **extra: Any) -> list[int]:
        # The template already wrote the BOS text, so do not add a second one.
        return self.tokenize(self.render_chat(messages, **extra), False)

    def count_chat(self, messages: list[dict[str, Any]]) -> int:
        return len(self.chat_tokens(messages))

    def eos_text(self) -> str:
        return self.formatter.eos_token if self.formatter is not None else ""

    def close(self) -> None:
        self.engine.close()
        self.llama.close()


def _formatter(llama: Any) -> Any:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        return None
    eos = llama.detokenize([llama.token_eos()], special=True).decode("utf-8", "ignore")
    bos = llama.detokenize([llama.token_bos()], special=True).decode("utf-8", "ignore")
    return Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)


class ModelPool:
    """Loads models by name on first use; keeps at most `max_loaded_models` in memory."""

    def __init__(self, settings: Settings, stats: EngineStats | None = None) -> None:
        self.settings = settings
        self.stats = stats
        self.loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self.state = "loading"
        self.error: str | None = None
        self.lock = asyncio.Lock()  # one load or unload at a time

    def available(self) -> dict[str, Path]:
        return discover(self.settings.models_dir)

    def resolve(self, name: str | None) -> tuple[str, Path]:
        """Map a requested name onto a model file, or raise 404 (never a silent fallback)."""
        name = name or self.settings.default_model
        models = self.available()
        if name not in models:
            raise APIError(404, f"The model '{name}' does not exist. "
                           f"Available: {', '.join(sorted(models)) or 'none'}.",
                           code="model_not_found", param="model")
        return name, models[name]

    @property
    def queue_depth(self) -> int:
        return sum(m.engine.queue_depth for m in self.loaded.values())

    @property
    def slots_busy(self) -> int:
        return sum(m.engine.busy for m in self.loaded.values())

    def _lease(self, name: str, path: Path) -> LoadedModel | None:
        model = self.loaded.get(name)
        if model is None or model.path != path:
            return None
        self.loaded.move_to_end(name)
        model.leases += 1
        model.drained.clear()
        return model

    async def acquire(self, name: str | None) -> LoadedModel:
        """A lease on the loaded model for `name`, loading it (and unloading the least
        recently used, once nobody uses it) if needed. Pair with `release`."""
        name, path = self.resolve(name)
        model = self._lease(name, path)
        if model is not None:
            return model
        async with self.lock:
            model = self._lease(name, path)
            if model is not None:
                return model
            stale = self.loaded.pop(name, None)  # the file changed on disk
            if stale is not None:
                await self._unload(stale)
            while len(self.loaded) >= self.settings.max_loaded_models:
                _, old = self.loaded.popitem(last=False)
                await self._unload(old)
            try:
                model = await asyncio.to_thread(self._load_sync, name, path)
            except Exception as exc:  # a broken GGUF must not take the server down
                log.exception("cannot load %s", path)
                raise APIError(500, f"Model '{name}' could not be loaded: {exc}",
                               code="model_load_failed", param="model") from exc
            self.loaded[name] = model
            model.leases += 1
            return model

    def release(self, model: LoadedModel) -> None:
        model.leases -= 1
        if model.leases <= 0:
            model.drained.set()

    async def _unload(self, model: LoadedModel) -> None:
        """Out of `loaded` already: wait until the last lease is returned, then free it."""
        if model.leases > 0:
            await model.drained.wait()
        await asyncio.to_thread(model.close)
        log.info("unloaded %s", model.name)

    def _load_sync(self, name: str, path: Path) -> LoadedModel:
        from llama_cpp import Llama, llama_model_n_ctx_train

        s = self.settings
        started = time.perf_counter()
        # Llama's own context only tokenizes; the engine decodes in a context of its own.
        llama = Llama(model_path=str(path), n_ctx=64, n_batch=64, n_threads=s.n_threads,
                      n_threads_batch=s.n_threads, n_gpu_layers=s.n_gpu_layers,
                      verbose=False)
        trained = int(llama_model_n_ctx_train(llama.model)) or s.n_ctx
        n_ctx = min(s.n_ctx, trained)
        slots = s.slots(gpu=backend.has_gpu(), kv_bytes=kv_bytes(llama.model, n_ctx))
        try:
            runtime = Runtime(llama, n_ctx, slots, max(s.n_batch, slots), s.n_threads,
                              s.flash_attn)
        except BaseException:
            llama.close()
            raise
        engine = Engine(runtime, slots, s.queue_size, s.prefill_chunk, self.stats,
                        stream_interval=s.stream_interval_ms / 1000)
        log.info("loaded %s from %s in %.2fs (context %d, %d slots)", name, path,
                 time.perf_counter() - started, n_ctx, slots)
        return LoadedModel(name, path, llama, engine, n_ctx, _formatter(llama))

    def slots_of(self, name: str) -> int | None:
        """The slots of a loaded model (None when it is not loaded)."""
        model = self.loaded.get(name)
        return model.engine.parallel if model is not None else None

    def close(self) -> None:
        for model in self.loaded.values():
            model.close()
        self.loaded.clear()


def kv_bytes(model: Any, n_ctx: int) -> int:
    """One slot's KV cache at `n_ctx` tokens: keys and values of every layer, f16."""
    import llama_cpp as C

    layers, embd = C.llama_model_n_layer(model), C.llama_model_n_embd(model)
    heads, kv_heads = C.llama_model_n_head(model), C.llama_model_n_head_kv(model)
    per_token = 2 * layers * embd * kv_heads // max(heads, 1) * 2
    return n_ctx * per_token
