"""Generated documents (Hypothesis) through the extractors: every upload is extracted or
refused with a 413, 415 or 422, in bounded time, and sniffing and headings agree with their
definitions on what they accept."""

from __future__ import annotations

import time

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from services import extract
from services.errors import APIError
from services.extract import Limits

# Pieces the sniffer and the heading finder look at, strung together at random and repeated,
# so inputs reach the sizes where a backtracking pattern shows.
PIECES = st.sampled_from([
    "<!--", "-->", "<!---->", "<html>", "<!doctype html>", "<head>", "<body>", "<p>", "</p>",
    "# ", "## ", "###### ", "####### ", " #", "\t", " ", "\n", "\r\n", "x", "é", "%PDF-",
    "PK\x03\x04", "\x00", "<", ">", "-", "!", "title"])
DOCS = st.builds(lambda parts, times: ("".join(parts) * times).encode("utf-8", "replace"),
                 st.lists(PIECES, min_size=1, max_size=40), st.integers(1, 3000))
NAMES = st.sampled_from(["a.txt", "a.md", "a.html", "a.pdf", "a.docx", "a", "a.bin"])
LIMITS = Limits(max_extracted_chars=2_000_000, timeout_s=10)
SLOWEST_S = 2.0  # each input is at most ~200 KB; linear code takes milliseconds


@settings(max_examples=150, deadline=None, database=None, derandomize=True,
          suppress_health_check=list(HealthCheck))
@given(data=DOCS, name=NAMES)
@example(data=b"<!---->" * 40 + b"x", name="a.txt")  # the four-upload lock of rag
@example(data=b"#" + b" " * 100_000 + b"x", name="a.md")
def test_any_document_is_extracted_or_refused_quickly(data: bytes, name: str) -> None:
    started = time.monotonic()
    try:
        result = extract.extract(data, name, LIMITS)
    except APIError as err:
        assert err.status in (413, 415, 422), err.body()
    else:
        assert result.text.strip()
        for start, level, title in result.headings:
            assert 1 <= level <= 6 and 0 <= start < len(result.text) and len(title) <= 200
    assert time.monotonic() - started < SLOWEST_S, (len(data), data[:80])


@settings(max_examples=300, deadline=None, database=None, derandomize=True)
@given(text=st.text(alphabet="# \tab\n", max_size=200))
def test_headings_follow_their_definition(text: str) -> None:
    """A heading is 1-6 hashes, a space or tab, then text; trailing hashes are dropped."""
    for start, level, title in extract._markdown_headings(text):
        line = text[start:].split("\n", 1)[0]
        assert line[:level] == "#" * level and line[level] in " \t"
        assert title == title.strip() and title in line
