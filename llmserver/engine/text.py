"""Tokens to text while streaming: whole UTF-8 characters only, stop strings held back."""

from __future__ import annotations

import codecs


class TextStream:
    """Turns token bytes into text that is safe to send.

    Bytes of a character split across tokens wait for the rest; text that might be the
    start of a stop string waits until it is clearly not one (a stop string itself is
    never sent, as in OpenAI's API).
    """

    def __init__(self, stops: list[str]) -> None:
        self.stops = [s for s in stops if s]
        # A character that begins no stop string can never be held back: text without any
        # of these, and nothing held, goes out as it is (the common case, checked in C).
        self.firsts = frozenset(s[0] for s in self.stops)
        self.decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self.held = ""

    def feed(self, data: bytes) -> tuple[str, bool]:
        """Add one token's bytes; returns (text to send now, whether a stop string hit)."""
        text = self.held + self.decoder.decode(data)
        if not self.held and self.firsts.isdisjoint(text):
            return text, False
        cut = min((i for i in (text.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            self.held = ""
            return text[:cut], True
        keep = 0
        for stop in self.stops:
            for n in range(min(len(stop) - 1, len(text)), keep, -1):
                if text.endswith(stop[:n]):
                    keep = n
                    break
        self.held = text[len(text) - keep:] if keep else ""
        return text[:len(text) - keep], False

    def flush(self) -> str:
        """What is still held, at the end of the answer."""
        text = self.held + self.decoder.decode(b"", final=True)
        self.held = ""
        return text
