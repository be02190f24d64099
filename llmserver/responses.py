"""OpenAI response shapes built from engine events: chat and text completions, whole or
as stream chunks, with logprobs and tool calls. Knows nothing of batching."""

from __future__ import annotations

import json
import math
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from services.thinking import ThinkSplitter

from .engine import Event
from .engine.task import TokenLogprob
from .schemas import Tool
from .structured import might_be_call, parse_call

_MARK = "\x00text\x00"  # stands for the text in a pre-built frame; never in real output


def sse(chunk: dict[str, Any]) -> bytes:
    """One server-sent event carrying `chunk` as JSON (JSON never spans lines)."""
    return b"data: " + json.dumps(chunk).encode() + b"\n\n"


class Frames:
    """The SSE bytes of a chunk whose only variable part is its text (in one field, or the
    same text in several), per choice: built once by `make(index, MARK)` and split around
    the marker, so each token costs one json.dumps of its text and one join (same bytes as
    `sse`)."""

    def __init__(self, make: Any) -> None:
        self.make = make
        self.frames: dict[int, list[bytes]] = {}

    def __call__(self, index: int, text: str) -> bytes:
        frame = self.frames.get(index)
        if frame is None:
            frame = self.frames[index] = sse(self.make(index, _MARK)).split(
                json.dumps(_MARK).encode())
        return json.dumps(text).encode().join(frame)


def reasoning_delta(text: str) -> dict[str, str]:
    """A chat delta of reasoning, under llama-server's name and vLLM's."""
    return {"reasoning_content": text, "reasoning": text}


def chat_logprob(lp: TokenLogprob) -> dict[str, Any]:
    return {"token": lp.token, "logprob": lp.logprob, "bytes": lp.bytes,
            "top_logprobs": [{"token": t, "logprob": v, "bytes": b} for t, v, b in lp.top]}


@dataclass
class Choice:
    """One choice's answer as it arrives; decides what may be streamed yet (a possible
    tool call is held back until it is clearly text, or parsed at the end). With `think`,
    a leading reasoning block goes to `reasoning` and only the rest is the answer."""

    index: int
    tools: list[Tool] | None = None
    forced: bool = False
    think: ThinkSplitter | None = None  # dropped once the answer's start is settled
    text: str = ""  # the answer
    sent: int = 0  # characters of `text` already streamed
    reasoning: str = ""
    thought: str = ""  # reasoning not streamed yet (see `take_thought`)
    logprobs: list[TokenLogprob] = field(default_factory=list)
    finish_reason: str | None = None
    tokens: int = 0
    tool_call: dict[str, Any] | None = None
    holding: bool = True

    def add(self, event: Event) -> str:
        """Take a token event; returns the answer text that may be streamed now."""
        if self.think is None:
            self.text += event.text
        else:
            self._split(self.think.feed(event.text))
        if event.logprob is not None:
            self.logprobs.append(event.logprob)
        if self.tools is None:
            return self._unsent()
        if self.forced:
            return ""
        if self.holding and not might_be_call(self.text):
            self.holding = False
        return "" if self.holding else self._unsent()

    def done(self, event: Event) -> str:
        """The choice ended: parse a held-back call; returns text still to stream."""
        self.finish_reason, self.tokens = event.finish_reason, event.tokens
        if self.think is not None:
            self._split(self.think.flush())
        if self.tools is not None and (self.forced or self.holding):
            self.tool_call = parse_call(self.text, self.tools)
            if self.tool_call is not None:
                self.finish_reason = "tool_calls"
                self.sent = len(self.text)
                return ""
        return self._unsent()

    def _unsent(self) -> str:
        out = self.text[self.sent:]
        self.sent = len(self.text)
        return out

    def _split(self, parts: list[tuple[str, str]]) -> None:
        assert self.think is not None
        for kind, piece in parts:
            if kind == "answer":
                self.text += piece
            else:
                self.reasoning += piece
                self.thought += piece
        if self.think.settled:  # the rest is answer: back to the plain path
            self.think = None

    def take_thought(self) -> str:
        """The reasoning that arrived since the last call (to stream as its own delta)."""
        out, self.thought = self.thought, ""
        return out

    def message(self) -> dict[str, Any]:
        message: dict[str, Any] = {"role": "assistant", "content": self.text}
        if self.tool_call is not None:
            message = {"role": "assistant", "content": None, "tool_calls": [self.tool_call]}
        if self.reasoning:  # llama-server's name, and vLLM's
            message["reasoning_content"] = message["reasoning"] = self.reasoning
        return message


class ChatShape:
    """chat.completion and chat.completion.chunk objects for one request."""

    def __init__(self, model: str, want_logprobs: bool) -> None:
        self.id = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model = model
        self.want_logprobs = want_logprobs
        # A streamed token with no logprobs: the bulk of every chat stream.
        self.content = Frames(lambda i, text: self.delta(i, {"content": text}))
        self.thought = Frames(lambda i, text: self.delta(i, reasoning_delta(text)))

    def chunk(self, choices: list[dict[str, Any]], **extra: Any) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion.chunk", "created": self.created,
                "model": self.model, "choices": choices, **extra}

    def delta(self, index: int, delta: dict[str, Any], finish: str | None = None,
              logprobs: list[TokenLogprob] | None = None) -> dict[str, Any]:
        lp = {"content": [chat_logprob(x) for x in logprobs]} if logprobs else None
        return self.chunk([{"index": index, "delta": delta, "logprobs": lp,
                            "finish_reason": finish}])

    def whole(self, choices: list[Choice], usage: dict[str, int]) -> dict[str, Any]:
        return {"id": self.id, "object": "chat.completion", "created": self.created,
                "model": self.model, "usage": usage,
                "choices": [{"index": c.index, "message": c.message(),
                             "logprobs": ({"content": [chat_logprob(x) for x in c.logprobs]}
                                          if self.want_logprobs else None),
                             "finish_reason": c.finish_reason} for c in choices]}


class CompletionShape:
    """text_completion objects (whole and chunks), with OpenAI's legacy logprobs."""

    def __init__(self, model: str, top: int | None) -> None:
        self.id = f"cmpl-{uuid.uuid4().hex[:24]}"
        self.created = int(time.time())
        self.model = model
        self.top = top
        self.text = Frames(lambda i, text: self.chunk(i, text))

    def logprobs(self, entries: list[TokenLogprob | None], offset: int) -> dict[str, Any]:
        tokens: list[str] = []
        values: list[float | None] = []
        tops: list[dict[str, float] | None] = []
        offsets: list[int] = []
        for entry in entries:
            if entry is None:
                continue
            offsets.append(offset)
            tokens.append(entry.token)
            scored = not math.isnan(entry.logprob)  # the prompt's first token has none
            values.append(entry.logprob if scored else None)
            tops.append({t: v for t, v, _ in entry.top} if self.top and scored else None)
            offset += len(entry.token)
        return {"tokens": tokens, "token_logprobs": values, "top_logprobs": tops,
                "text_offset": offsets}

    def chunk(self, index: int, text: str, finish: str | None = None,
              logprobs: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
        return {"id": self.id, "object": "text_completion", "created": self.created,
                "model": self.model, "choices": [{"text": text, "index": index,
                                                  "logprobs": logprobs,
                                                  "finish_reason": finish}], **extra}

    def whole(self, texts: list[str], choices: list[Choice],
              logprobs: list[dict[str, Any] | None], usage: dict[str, int]) -> dict[str, Any]:
        return {"id": self.id, "object": "text_completion", "created": self.created,
                "model": self.model, "usage": usage,
                "choices": [{"text": t, "index": c.index, "logprobs": lp,
                             "finish_reason": c.finish_reason}
                            for t, c, lp in zip(texts, choices, logprobs, strict=True)]}


def usage(prompt_tokens: int, choices: list[Choice]) -> dict[str, int]:
    completion = sum(c.tokens for c in choices)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion}
