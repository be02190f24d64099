"""Token-window chunking with the embedder's own tokenizer, keeping character offsets and pages."""

from __future__ import annotations

import bisect
from dataclasses import dataclass
from typing import Any

# Tokenise long texts in blocks cut at whitespace, so one huge string never stalls the tokenizer.
BLOCK_CHARS = 100_000


@dataclass(frozen=True)
class Chunk:
    index: int
    text: str
    start: int  # character offset into the extracted text
    end: int
    page: int | None  # 1-based page of `start`, when the format has pages


def _blocks(text: str) -> list[tuple[int, int]]:
    spans, pos = [], 0
    while pos < len(text):
        end = min(len(text), pos + BLOCK_CHARS)
        if end < len(text):
            cut = max(text.rfind("\n", pos, end), text.rfind(" ", pos, end))
            end = cut + 1 if cut > pos else end
        spans.append((pos, end))
        pos = end
    return spans


def token_offsets(tokenizer: Any, text: str) -> list[tuple[int, int]]:
    """(start, end) character offsets of every token of `text`, without special tokens."""
    spans = _blocks(text)
    encodings = tokenizer.encode_batch([text[a:b] for a, b in spans], add_special_tokens=False)
    offsets: list[tuple[int, int]] = []
    for (base, _), enc in zip(spans, encodings, strict=False):
        offsets.extend((base + s, base + e) for s, e in enc.offsets)
    return offsets


def chunk_text(text: str, tokenizer: Any, size: int, overlap: int,
               page_starts: list[int] | None = None) -> list[Chunk]:
    """Split `text` into windows of `size` tokens that share `overlap` tokens.

    Args:
        text: the extracted document text.
        tokenizer: a `tokenizers.Tokenizer` (the embedder's).
        size: tokens per chunk; callers cap it at the model's maximum sequence.
        overlap: tokens repeated at the start of the next chunk (< size).
        page_starts: character offset where each page begins (page 1 first), if any.
    """
    overlap = min(overlap, size - 1)
    offsets = token_offsets(tokenizer, text)
    chunks: list[Chunk] = []
    step = size - overlap
    for first in range(0, max(len(offsets), 1), step):
        window = offsets[first:first + size]
        if not window:
            break
        start, end = window[0][0], window[-1][1]
        page = None
        if page_starts:
            page = bisect.bisect_right(page_starts, start)
        chunks.append(Chunk(len(chunks), text[start:end], start, end, page))
        if first + size >= len(offsets):
            break
    return chunks
