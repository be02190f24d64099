"""Which models exist (rescanned on demand) and which are loaded in llama.cpp."""

from __future__ import annotations

import asyncio
import logging
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from services.errors import APIError
from .models import discover

from .config import Settings

log = logging.getLogger(__name__)


@dataclass
class LoadedModel:
    """One llama.cpp model in memory, with what we need to count its prompt tokens."""

    name: str
    path: Path
    llama: Any
    formatter: Any = None  # Jinja2ChatFormatter from the GGUF's template, when it has one
    loaded_at: float = field(default_factory=time.time)

    def count_text(self, text: str) -> int:
        return len(self.llama.tokenize(text.encode("utf-8"), add_bos=True, special=True))

    def render_chat(self, messages: list[dict[str, Any]]) -> str | None:
        """The prompt the chat template makes of `messages`, or None without a template."""
        if self.formatter is None:
            return None
        return self.formatter(messages=messages).prompt

    def count_chat(self, messages: list[dict[str, Any]]) -> int:
        prompt = self.render_chat(messages)
        if prompt is None:  # no template: a close estimate from the raw text
            prompt = "\n".join(f"{m['role']}: {m.get('content') or ''}" for m in messages)
        # The formatter already wrote the BOS text, so do not add a second one.
        return len(self.llama.tokenize(prompt.encode("utf-8"), add_bos=False, special=True))


def _formatter(llama: Any) -> Any:
    from llama_cpp.llama_chat_format import Jinja2ChatFormatter

    template = llama.metadata.get("tokenizer.chat_template")
    if not template:
        return None
    eos = llama.detokenize([llama.token_eos()], special=True).decode("utf-8", "ignore")
    bos = llama.detokenize([llama.token_bos()], special=True).decode("utf-8", "ignore")
    return Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)


class ModelPool:
    """Loads models by name on first use and keeps at most `max_loaded_models` in memory.

    Callers hold the generation gate while they load or use a model, so a load never
    races a generation on the same memory.
    """

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.loaded: OrderedDict[str, LoadedModel] = OrderedDict()
        self.state = "loading"
        self.error: str | None = None

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

    def _load_sync(self, name: str, path: Path) -> LoadedModel:
        from llama_cpp import Llama

        s = self.settings
        started = time.perf_counter()
        llama = Llama(model_path=str(path), n_ctx=s.n_ctx, n_threads=s.n_threads,
                      n_threads_batch=s.n_threads, n_batch=s.n_batch,
                      n_gpu_layers=s.n_gpu_layers, chat_format=s.chat_format,
                      seed=s.seed if s.seed >= 0 else 0xFFFFFFFF, verbose=False)
        log.info("loaded %s from %s in %.2fs", name, path, time.perf_counter() - started)
        return LoadedModel(name, path, llama, _formatter(llama))

    async def get(self, name: str | None) -> LoadedModel:
        """The loaded model for `name`, loading it (and evicting the oldest) if needed."""
        name, path = self.resolve(name)
        model = self.loaded.get(name)
        if model is not None and model.path == path:
            self.loaded.move_to_end(name)
            return model
        while len(self.loaded) >= self.settings.max_loaded_models:
            _, old = self.loaded.popitem(last=False)
            await asyncio.to_thread(old.llama.close)
        try:
            model = await asyncio.to_thread(self._load_sync, name, path)
        except Exception as exc:  # a broken GGUF must not take the server down
            log.exception("cannot load %s", path)
            raise APIError(500, f"Model '{name}' could not be loaded: {exc}",
                           code="model_load_failed", param="model") from exc
        self.loaded[name] = model
        return model

    def close(self) -> None:
        for model in self.loaded.values():
            model.llama.close()
        self.loaded.clear()
