"""The continuous-batching engine: many requests share one llama.cpp context.

`Runtime` owns the context (one KV sequence per slot), `Engine` runs the batch loop in one
thread, `Task` is what the HTTP layer submits and `Event` what it reads back.
"""

from .loop import Engine, EngineStats
from .runtime import Runtime
from .sampling import Sampler, SamplingConfig
from .task import Event, Task

__all__ = ["Engine", "EngineStats", "Event", "Runtime", "Sampler", "SamplingConfig", "Task"]
