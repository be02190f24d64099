"""Model text on a terminal: every escape sequence and control character goes, wherever the
stream cuts it; the visible text, newlines and tabs stay."""

from __future__ import annotations

import pytest

from chatbot.controls import ControlFilter, printable

HOSTILE = ("Hello\x1b]0;pwned\x07 wor\x1b[2Jld\x1b[31m red\x1b[0m \x9b31mC1 ding\x07"
           "\x1b]8;;http://evil.test\x1b\\link\x1b]8;;\x1b\\\tend\r\nnext\x00 line\x7f\x85")
SEEN = "Hello world red C1 dinglink\tend\nnext line"


def test_whole_text() -> None:
    assert printable(HOSTILE) == SEEN


@pytest.mark.parametrize("cut", range(len(HOSTILE) + 1))
def test_a_sequence_cut_across_two_chunks_is_still_removed(cut: int) -> None:
    controls = ControlFilter()
    assert controls.feed(HOSTILE[:cut]) + controls.feed(HOSTILE[cut:]) == SEEN


def test_one_character_at_a_time() -> None:
    controls = ControlFilter()
    assert "".join(controls.feed(ch) for ch in HOSTILE) == SEEN


@pytest.mark.parametrize("text,seen", [
    ("a\x1bcb", "ab"),  # RIS, a full reset
    ("a\x1b(Bb", "ab"),  # character set, an intermediate byte
    ("a\x1b[?1049hb", "ab"),  # alternate screen, private parameters
    ("a\x1b[1;31;4mb", "ab"),
    ("a\x1bPq#0;2;0;0;0\x1b\\b", "ab"),  # DCS (sixel), ended by ST
    ("a\x1b_payload\x9cb", "ab"),  # APC, ended by C1 ST
    ("a\x9d0;title\x07b", "ab"),  # C1 OSC
    ("a\x1b]52;c;cHduZWQ=\x07b", "ab"),  # OSC 52: write the clipboard
    ("a\x1b[31\x18b", "ab"),  # CAN cancels a CSI
    ("a\x1b[12é", "aé"),  # a character that cannot go on a CSI ends it and shows
    ("a\x1b]0;never ends", "a"),  # an open string swallows the rest, never prints it
    ("a\x1b\x1b[2Jb", "ab"),
    ("a\rb\bc\x0bd\x0ce", "abcde"),
    ("café ☕ 𝔵 \u00a0z", "café ☕ 𝔵 \u00a0z"),  # NBSP is not a control
    ("line\n\tindented", "line\n\tindented"),
])
def test_sequences_and_controls(text: str, seen: str) -> None:
    assert printable(text) == seen
