"""Split a thinking model's `<think>…</think>` reasoning from its answer as the text streams.

The tags may arrive cut across chunks ("<thi" + "nk>"), so a possible start of a tag is held
back until the next piece decides it. Two readings: a server (llmserver) takes only a block
at the start of the answer, or one the prompt already opened, as llama-server does; a client
(the chatbot, reading an upstream that leaves reasoning inline) takes every block.
"""

from __future__ import annotations

from typing import Any

OPEN, CLOSE = "<think>", "</think>"


class ThinkSplitter:
    """Feed it text as it comes; it says which parts are settled reasoning or answer.

    Args:
        opened: the prompt already opened the block (templates that end their generation
            prompt with `<think>`), so the text starts inside it.
        leading: only a block at the very start (after whitespace) is reasoning; after its
            close, or once the text starts otherwise, everything is answer as it comes.
    """

    def __init__(self, opened: bool = False, leading: bool = False) -> None:
        self.inside = opened
        self.leading = leading
        self.started = opened  # leading: the start of the text is decided
        self.over = False  # leading: no block can come any more; the rest is answer
        self.trim = False  # leading: drop the whitespace right after the close tag
        self.held = ""
        self.thinking: list[str] = []

    @property
    def settled(self) -> bool:
        """Every further piece is answer as it is (a caller may stop feeding)."""
        return self.over and not self.trim and not self.held

    def feed(self, piece: str) -> list[tuple[str, str]]:
        """("thinking" | "answer", text) parts of the text so far that are settled."""
        text, self.held = self.held + piece, ""
        out: list[tuple[str, str]] = []
        if self.leading and not self.started:
            body = text.lstrip()
            if len(body) < len(OPEN) and OPEN.startswith(body):  # whitespace, or "<thi"
                self.held = text
                return out
            self.started = True
            if not body.startswith(OPEN):
                self.over = True
                self._emit(out, text)
                return out
            self.inside, text = True, body[len(OPEN):]
        if self.over:
            self._answer(out, text)
            return out
        while text:
            tag = CLOSE if self.inside else OPEN
            at = text.find(tag)
            if at >= 0:
                self._emit(out, text[:at])
                text = text[at + len(tag):]
                self.inside = not self.inside
                if self.leading:  # the block is over: what follows is the answer
                    self.over = self.trim = True
                    self._answer(out, text)
                    return out
                continue
            keep = _partial_suffix(text, tag)  # a tag may be starting at the end
            self._emit(out, text[:len(text) - keep])
            self.held = text[len(text) - keep:]
            break
        return out

    def thought(self, text: str) -> list[tuple[str, str]]:
        """Reasoning that came apart already (an upstream's `reasoning_content`)."""
        out: list[tuple[str, str]] = []
        if text:
            self.thinking.append(text)
            out.append(("thinking", text))
        return out

    def flush(self) -> list[tuple[str, str]]:
        """Whatever was held back, at the end of the stream (an unclosed block is
        reasoning to the end)."""
        out: list[tuple[str, str]] = []
        self._emit(out, self.held)
        self.held = ""
        return out

    def _answer(self, out: list[tuple[str, str]], text: str) -> None:
        if self.trim:
            text = text.lstrip()
            self.trim = not text
        self._emit(out, text)

    def _emit(self, out: list[tuple[str, str]], text: str) -> None:
        if not text:
            return
        kind = "thinking" if self.inside else "answer"
        if kind == "thinking":
            self.thinking.append(text)
        out.append((kind, text))


def _partial_suffix(text: str, tag: str) -> int:
    """Length of the longest end of `text` that is a beginning of `tag`."""
    for n in range(min(len(tag) - 1, len(text)), 0, -1):
        if tag.startswith(text[-n:]):
            return n
    return 0


def strip(text: str) -> str:
    """`text` without its <think> blocks (an unclosed one runs to the end)."""
    splitter = ThinkSplitter()
    parts = splitter.feed(text) + splitter.flush()
    return "".join(t for kind, t in parts if kind == "answer")


def opens_block(prompt_tail: str) -> bool:
    """Whether a rendered prompt ends inside an open block (its generation prompt opens it)."""
    return prompt_tail.rstrip().endswith(OPEN)


def reasoning_of(delta: dict[str, Any]) -> str:
    """The reasoning a chat delta (or message) carries apart from its content: llama-server's
    `reasoning_content`, else vLLM's `reasoning` (llmserver sends both, the same text)."""
    return str(delta.get("reasoning_content") or delta.get("reasoning") or "")


def chunk_reasoning(chunk: dict[str, Any]) -> str:
    """The reasoning in a chat.completion.chunk's choices."""
    return "".join(reasoning_of(c.get("delta") or {}) for c in chunk.get("choices") or [])
