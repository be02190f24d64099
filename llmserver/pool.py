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

from . import backend, model_settings, modelfile
from .config import Settings, available_memory, duration_s
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
    keep_alive_s: float = -1  # idle time before it is unloaded; negative: never
    system_prompt: str | None = None  # models.json's default system message
    used_at: float = field(default_factory=time.monotonic)

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


def _formatter(llama: Any, template: str | None = None) -> Any:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = template or llama.metadata.get("tokenizer.chat_template")
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
            overrides = self._model_settings(name)
            evicted = list(self.loaded.values())[
                :max(0, len(self.loaded) + 1 - self.settings.max_loaded_models)]
            self._check_memory(name, path, overrides, evicted)
            while len(self.loaded) >= self.settings.max_loaded_models:
                _, old = self.loaded.popitem(last=False)
                await self._unload(old)
            try:
                model = await asyncio.to_thread(self._load_sync, name, path, overrides)
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
            model.used_at = time.monotonic()
            if model.keep_alive_s >= 0:
                try:
                    loop = asyncio.get_running_loop()
                except RuntimeError:
                    return
                stamp = model.used_at
                loop.call_later(model.keep_alive_s,
                                lambda: loop.create_task(self._unload_idle(model, stamp)))

    async def _unload_idle(self, model: LoadedModel, stamp: float) -> None:
        """Unload `model` if nobody used it since `stamp` (its keep_alive ran out)."""
        async with self.lock:
            if model.leases or model.used_at != stamp or self.loaded.get(model.name) is not model:
                return
            self.loaded.pop(model.name)
            await self._unload(model)
            log.info("unloaded %s after %.0fs idle", model.name, model.keep_alive_s)

    def keep(self, model: LoadedModel, keep_alive: str | float | int | None) -> None:
        """A request's keep_alive for its model (400 when it is not a duration)."""
        if keep_alive is None:
            return
        try:
            model.keep_alive_s = duration_s(keep_alive)
        except ValueError as exc:
            raise APIError(400, str(exc), code="invalid_value", param="keep_alive") from exc

    def _model_settings(self, name: str) -> model_settings.ModelSettings:
        try:
            return model_settings.of(self.settings.models_dir, name)
        except ValueError as exc:
            raise APIError(500, f"Model '{name}' has bad settings: {exc}",
                           code="model_settings_invalid", param="model") from exc

    def _check_memory(self, name: str, path: Path, overrides: model_settings.ModelSettings,
                      evicted: list[LoadedModel]) -> None:
        """Refuse (507) a model whose weights and KV cache need more memory than there is,
        counting what unloading `evicted` gives back; never an out-of-memory kill."""
        s = self.settings.model_copy(update=overrides.engine())
        if s.n_gpu_layers and backend.has_gpu():
            return  # the weights go to the GPU; llama.cpp reports a VRAM shortfall itself
        try:
            info = modelfile.read(path)
        except (OSError, ValueError):
            return  # llama.cpp's load gives the clearer error
        n_ctx = min(s.n_ctx, info.context_length or s.n_ctx)
        kv = info.kv_bytes_per_token() * n_ctx
        slots = s.slots(gpu=False, kv_bytes=kv or None)
        need = info.size + slots * kv + (64 << 20)  # and llama.cpp's compute buffers
        budget = s.memory_budget_mb << 20 or (available_memory() or 0)
        budget += sum(m.path.stat().st_size for m in evicted if m.path.exists())
        if budget and need > budget:
            raise APIError(507, f"Model '{name}' needs about {need / 2**30:.2f} GiB of memory "
                           f"(weights {info.size / 2**30:.2f} GiB, KV cache "
                           f"{slots * kv / 2**30:.2f} GiB for {slots} slots of {n_ctx} tokens);"
                           f" {budget / 2**30:.2f} GiB is available. Use a smaller "
                           "quantisation, a shorter context (n_ctx) or fewer slots.",
                           code="insufficient_memory", param="model")

    async def _unload(self, model: LoadedModel) -> None:
        """Out of `loaded` already: wait until the last lease is returned, then free it."""
        if model.leases > 0:
            await model.drained.wait()
        await asyncio.to_thread(model.close)
        log.info("unloaded %s", model.name)

    def _load_sync(self, name: str, path: Path,
                   overrides: model_settings.ModelSettings | None = None) -> LoadedModel:
        from llama_cpp import Llama, llama_model_n_ctx_train

        overrides = overrides or model_settings.ModelSettings()
        s = self.settings.model_copy(update=overrides.engine())
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
        model = LoadedModel(name, path, llama, engine, n_ctx,
                            _formatter(llama, overrides.chat_template))
        model.keep_alive_s = duration_s(overrides.keep_alive or s.keep_alive)
        model.system_prompt = overrides.system_prompt
        return model

    async def forget(self, name: str) -> None:
        """Unload `name` before its file goes; 409 while a request uses it."""
        async with self.lock:
            model = self.loaded.get(name)
            if model is None:
                return
            if model.leases:
                raise APIError(409, f"The model '{name}' is answering a request; try again "
                               "when it is done.", code="model_in_use", param="name")
            self.loaded.pop(name)
            await self._unload(model)

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
