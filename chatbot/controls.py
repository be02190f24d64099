"""Text from a server made safe to print on a terminal: escape sequences and control
characters out, the visible text (with its newlines and tabs) kept.

A model's output is untrusted: an OSC sequence can retitle the window or plant a hyperlink,
a CSI one can clear the screen or move the cursor over earlier text, and some terminals
act on C1 controls (U+0080..U+009F) as well. The filter is a small state machine after the
VT500 parser (ECMA-48), so a sequence cut across stream chunks is still recognised: its
start is remembered as state, not printed, until the next chunk ends it.
"""

from __future__ import annotations

from enum import Enum

ESC, BEL, CAN, SUB, ST = "\x1b", "\x07", "\x18", "\x1a", "\x9c"
KEPT = frozenset("\n\t")
STRING_INTRO = frozenset("]PX^_")  # OSC, DCS, SOS, PM, APC: a string that ends with ST
C1_STRING = frozenset("\x9d\x90\x98\x9e\x9f")  # the same five as C1 controls
C1_CSI = "\x9b"


class State(Enum):
    TEXT = "text"
    ESCAPE = "escape"  # after ESC
    ESCAPE_MORE = "escape_more"  # ESC and intermediate bytes, waiting for the final byte
    CSI = "csi"  # ESC [ or C1 CSI, waiting for the final byte
    STRING = "string"  # inside OSC/DCS/SOS/PM/APC, waiting for ST (or BEL)
    STRING_ESC = "string_esc"  # ESC inside a string: ST if a backslash follows


def is_control(ch: str) -> bool:
    """C0 (but newline and tab), DEL and C1."""
    code = ord(ch)
    return (code < 0x20 and ch not in KEPT) or 0x7F <= code <= 0x9F


class ControlFilter:
    """Feed it a stream's pieces; it returns each piece's printable part (a sequence still
    open when the stream ends is dropped, never printed)."""

    def __init__(self) -> None:
        self.state = State.TEXT

    def feed(self, piece: str) -> str:
        out: list[str] = []
        for ch in piece:
            self._step(ch, out)
        return "".join(out)

    def _step(self, ch: str, out: list[str]) -> None:
        code, state = ord(ch), self.state
        if state is State.ESCAPE:
            if ch == "[":
                self.state = State.CSI
            elif ch in STRING_INTRO:
                self.state = State.STRING
            elif 0x20 <= code <= 0x2F:
                self.state = State.ESCAPE_MORE
            elif 0x30 <= code <= 0x7E:
                self.state = State.TEXT  # a two-byte sequence (ESC c, ESC 7...), now over
            elif ch != ESC:
                self._abort(ch, out)
        elif state is State.ESCAPE_MORE:
            if 0x30 <= code <= 0x7E:
                self.state = State.TEXT
            elif not 0x20 <= code <= 0x2F:
                self._abort(ch, out)
        elif state is State.CSI:
            if 0x40 <= code <= 0x7E:
                self.state = State.TEXT  # the final byte
            elif not 0x20 <= code <= 0x3F:  # neither a parameter nor an intermediate byte
                self._abort(ch, out)
        elif state is State.STRING:
            if ch in (BEL, ST, CAN, SUB):
                self.state = State.TEXT
            elif ch == ESC:
                self.state = State.STRING_ESC
        elif state is State.STRING_ESC:
            if ch == "\\":
                self.state = State.TEXT
            else:  # as xterm does: ESC ends the string and starts a new sequence
                self.state = State.ESCAPE
                self._step(ch, out)
        else:
            self._text(ch, out)

    def _abort(self, ch: str, out: list[str]) -> None:
        """A byte that cannot continue the sequence ends it; it is then read as text."""
        self.state = State.TEXT
        self._text(ch, out)

    def _text(self, ch: str, out: list[str]) -> None:
        if ch == ESC:
            self.state = State.ESCAPE
        elif ch == C1_CSI:
            self.state = State.CSI
        elif ch in C1_STRING:
            self.state = State.STRING
        elif not is_control(ch):
            out.append(ch)


def printable(text: str) -> str:
    """`text` whole (a message, a name) without its escape sequences and control characters."""
    return ControlFilter().feed(text)
