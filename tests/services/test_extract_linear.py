"""Sniffing and heading detection run in linear time on hostile uploads, and answer exactly
as the regexes they replaced on ordinary ones."""

from __future__ import annotations

import random
import re
import time
from collections.abc import Callable
from typing import Any

import pytest

from services import extract
from services.extract import Limits, sniff

# The regexes extract.py used before: the reference on small, ordinary inputs only (on
# hostile ones they backtrack exponentially or quadratically).
OLD_HTML_START = re.compile(
    rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html[\s>]|head[\s>]|body[\s>])",
    re.IGNORECASE | re.DOTALL)
OLD_MD_HEADING = re.compile(r"^(#{1,6})[ \t]+(.+?)[ \t#]*$", re.MULTILINE)


def old_headings(text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), len(m.group(1)), m.group(2).strip()[:200])
            for m in OLD_MD_HEADING.finditer(text)][:10_000]


SIZE = 100_000
HOSTILE_HTML = [
    ("comment bomb", b"<!---->" * (SIZE // 7) + b"x"),
    ("comment bomb then html", b"<!---->" * (SIZE // 7) + b"<html>"),
    ("openers without closers", b"<!--" * (SIZE // 4) + b"x"),
    ("one opener, many closers", b"<!--" + b"-->" * (SIZE // 3) + b"x"),
    ("closers and spaces", b"<!--" + b"--> " * (SIZE // 4) + b"x"),
    ("dashes", b"<!--" + b"-" * SIZE),
    ("whitespace after a comment", b"<!---->" + b" " * SIZE + b"x"),
    ("doctype and whitespace", b"<!doctype" + b" " * SIZE + b"x"),
    ("nested-looking comments", b"<!--<!--" * (SIZE // 8) + b"-->" * 10 + b"x"),
]
HOSTILE_MARKDOWN = [
    ("spaces inside a heading", "# x" + " " * SIZE + "y"),
    ("hashes inside a heading", "# " + "#" * SIZE + "x"),
    ("space-hash pairs", "# a" + " #" * (SIZE // 2) + "b"),
    ("long line, no heading", "a" * SIZE),
    ("long run of hashes", "#" * SIZE),
    ("long whitespace after hashes", "#" + " \t" * (SIZE // 2)),
    ("many short headings", "# x\n" * (SIZE // 4)),
    ("many seven-hash lines", "####### x\n" * (SIZE // 10)),
    ("many lone hashes", "#\n" * (SIZE // 2)),
]


def timed(fn: Callable[[], Any]) -> tuple[Any, float]:
    started = time.perf_counter()
    result = fn()
    return result, time.perf_counter() - started


@pytest.mark.timeout(10)
@pytest.mark.parametrize("data", [h[1] for h in HOSTILE_HTML], ids=[h[0] for h in HOSTILE_HTML])
def test_html_sniffing_is_linear(data: bytes) -> None:
    for fn in (lambda: sniff(data, "upload.txt"), lambda: sniff(data, "upload.html"),
               lambda: extract._html_start(data)):
        _, seconds = timed(fn)
        assert seconds < 0.5, f"{seconds:.2f} s"
    assert extract._html_start(data) == (data.endswith(b"<html>"))


@pytest.mark.timeout(10)
@pytest.mark.parametrize("text", [h[1] for h in HOSTILE_MARKDOWN],
                         ids=[h[0] for h in HOSTILE_MARKDOWN])
def test_markdown_headings_are_linear(text: str) -> None:
    _, seconds = timed(lambda: extract._markdown_headings(text))
    assert seconds < 0.5, f"{seconds:.2f} s"
    _, seconds = timed(lambda: extract.extract(text.encode(), "notes.md", Limits()))
    assert seconds < 0.5, f"{seconds:.2f} s"


ORDINARY_HTML = [
    b"<!DOCTYPE html><html><body><p>hi</p></body></html>",
    b"  \n<html lang='en'>", b"\xef\xbb\xbf<!doctype HTML>\n<html>", b"<HEAD><title>",
    b"<body>", b"<body\n class=x>", b"<!-- generated --><html>", b"<!-- a -->\n<!-- b -->\n<body>",
    b"<!-- a --> junk <!-- b --> <html>", b"<!-- a --> junk <html>", b"<!----><html>",
    b"<!--><html>", b"<!--->--> <html>", b"<!-- unclosed <html>", b"<!doctypehtml>",
    b"<!doctype\t\nhtml", b"<html", b"<htmlx>", b"<bodyguard>", b"<p>hi</p>",
    b"<?xml version='1.0'?><html>", b"plain text", b"", b"\x0b\x0c<html>", b"# Title\n",
]
HTML_PIECES = [b"<!--", b"-->", b"--", b"-", b">", b"<", b" ", b"\n", b"x", b"<html>",
               b"<!doctype html>", b"<!DOCTYPE", b"<body ", b"<head>", b"<HTML\t", b"<!-->",
               b"\x0c"]
ORDINARY_MARKDOWN = [
    "# Title\nSome text.\n## Part one ##\nMore.\n### Three\t\n",
    "#No space\n####### Seven\n###### Six #\n#\tTab\n  # Indented\n",
    "# \n#  \n# ##\n# a # b ##\n# C#\n#\t \t\n", "# Windows\r\nline\r\n## Two\r\n",
    "text only\nno headings here\n", "", "# last line without newline",
    "# Émile\n## 日本語の見出し\n# \x0bvertical\n",
]
MD_PIECES = ["#", "##", "###", "#######", " ", "  ", "\t", "x", "Title", "\n", "\r\n", "\r",
             "é", "\x0b", "\u2028", "-", "##  "]


def random_joins(pieces: list[Any], count: int, most: int, seed: int) -> list[Any]:
    rng = random.Random(seed)
    empty = pieces[0][:0]
    return [empty.join(rng.choice(pieces) for _ in range(rng.randint(0, most)))
            for _ in range(count)]


def test_html_sniffing_answers_as_before() -> None:
    for data in ORDINARY_HTML + random_joins(HTML_PIECES, 3000, 8, seed=1):
        assert extract._html_start(data) == bool(OLD_HTML_START.match(data)), data
        for name in ("upload.txt", "upload.htm"):
            expected = "html" if OLD_HTML_START.match(data.lstrip(b"\xef\xbb\xbf")) or (
                name.endswith(".htm") and data.lstrip(b"\xef\xbb\xbf").lstrip().startswith(b"<")
            ) else "text"
            assert sniff(data, name) == expected, (data, name)


def test_markdown_headings_answer_as_before() -> None:
    for text in ORDINARY_MARKDOWN + random_joins(MD_PIECES, 3000, 12, seed=2):
        assert extract._markdown_headings(text) == old_headings(text), repr(text)
    many = "# h\n" * 10_050
    assert extract._markdown_headings(many) == old_headings(many)  # the first 10,000
