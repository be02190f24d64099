"""The loop guard: notice an answer that has started repeating one passage over and over.

Small models at low temperature fall into loops ("* Apple\n* Apple\n...", one sentence again
and again) and would fill max_tokens with them while holding a generation slot. The guard
looks at the tail of the answer: when it consists of one passage repeated `repeats` times in a
row (and the repeated span is at least `min_chars` long, so "ha ha ha" is left alone), the
answer is a loop. Digits and whitespace are normalised first, so numbered lists that loop
("1. Apple 2. Apple 3. Apple") count as repeats too.
"""

from __future__ import annotations

import re

_SPACE = re.compile(r"\s+")
_DIGITS = re.compile(r"\d+")


def normalised(text: str) -> str:
    return _DIGITS.sub("0", _SPACE.sub(" ", text))


def repeating(text: str, window: int, repeats: int, min_chars: int) -> str | None:
    """The passage the tail of `text` repeats, or None.

    Args:
        text: the answer so far.
        window: characters of the tail examined (the longest loop caught is window/repeats).
        repeats: times in a row a passage must appear.
        min_chars: shortest repeated span (passage length x times seen) that counts.
    """
    if repeats < 2 or window <= 0:
        return None
    # A little extra raw text, since normalising shrinks runs of whitespace.
    tail = normalised(text[-2 * window:])[-window:]
    n = len(tail)
    for period in range(1, n // repeats + 1):
        times = max(repeats, -(-min_chars // period))
        span = period * times
        if span > n:
            continue
        passage = tail[-period:]
        if passage.strip() and tail[-span:] == passage * times:
            return passage
    return None


class LoopGuard:
    """Fed the answer's pieces as they stream; `tripped` once the answer loops."""

    def __init__(self, window: int, repeats: int, min_chars: int) -> None:
        self.window, self.repeats, self.min_chars = window, repeats, min_chars
        self.text = ""
        self.passage: str | None = None

    @property
    def enabled(self) -> bool:
        return self.repeats >= 2 and self.window > 0

    def feed(self, piece: str) -> bool:
        """Add a piece of the answer; True when the answer now loops."""
        if not piece or not self.enabled or self.passage is not None:
            return self.passage is not None
        self.text += piece
        self.text = self.text[-4 * self.window:]  # only the tail is ever looked at
        self.passage = repeating(self.text, self.window, self.repeats, self.min_chars)
        return self.passage is not None

    @property
    def tripped(self) -> bool:
        return self.passage is not None
