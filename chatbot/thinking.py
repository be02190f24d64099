"""Split a thinking model's `<think>…</think>` reasoning from its answer as the text streams.

The tags may arrive cut across chunks ("<thi" + "nk>"), so a possible start of a tag is held
back until the next piece decides it. The reasoning is shown in its own block and stored
apart; it never goes back to the model as part of the conversation.
"""

from __future__ import annotations

OPEN, CLOSE = "<think>", "</think>"


class ThinkSplitter:
    def __init__(self) -> None:
        self.inside = False
        self.held = ""
        self.thinking: list[str] = []

    def feed(self, piece: str) -> list[tuple[str, str]]:
        """("thinking" | "answer", text) parts of the text so far that are settled."""
        text, self.held = self.held + piece, ""
        out: list[tuple[str, str]] = []
        while text:
            tag = CLOSE if self.inside else OPEN
            at = text.find(tag)
            if at >= 0:
                self._emit(out, text[:at])
                text = text[at + len(tag):]
                self.inside = not self.inside
                continue
            keep = _partial_suffix(text, tag)  # a tag may be starting at the end
            self._emit(out, text[:len(text) - keep])
            self.held = text[len(text) - keep:]
            break
        return out

    def flush(self) -> list[tuple[str, str]]:
        """Whatever was held back, at the end of the stream."""
        out: list[tuple[str, str]] = []
        self._emit(out, self.held)
        self.held = ""
        return out

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
