"""BM25-style sparse vectors: term frequencies saturated by document length, hashed terms.

Documents carry the BM25 term-frequency part; the inverse document frequency is applied by
Qdrant at query time (the collection's sparse vector has the IDF modifier), so collection
statistics stay right as documents come and go. Queries carry weight 1 per distinct term.
"""

from __future__ import annotations

import re
import zlib
from collections import Counter

K1 = 1.2
B = 0.75
AVG_TERMS = 160.0  # terms in a typical chunk (256 model tokens of English prose)
_WORD = re.compile(r"[^\W_]+", re.UNICODE)
STOPWORDS = frozenset("""a an and are as at be but by can do does for from has have how i if in
into is it its me my no not of on or our so that the their them then there these they this to
was we were what when where which who why will with you your""".split())


def terms(text: str) -> list[str]:
    """Lower-cased words and numbers, stopwords dropped; identifiers split at punctuation."""
    return [w for w in _WORD.findall(text.lower()) if w not in STOPWORDS and len(w) < 40]


def term_id(term: str) -> int:
    return zlib.crc32(term.encode())


def _pack(weights: dict[int, float]) -> tuple[list[int], list[float]]:
    indices = sorted(weights)
    return indices, [weights[i] for i in indices]


def document_vector(text: str) -> tuple[list[int], list[float]]:
    """(indices, values) of a chunk: BM25 term-frequency weights."""
    words = terms(text)
    norm = K1 * (1 - B + B * len(words) / AVG_TERMS)
    weights: dict[int, float] = {}
    for word, tf in Counter(words).items():
        key = term_id(word)
        weights[key] = weights.get(key, 0.0) + tf * (K1 + 1) / (tf + norm)
    return _pack(weights)


def query_vector(text: str) -> tuple[list[int], list[float]]:
    """(indices, values) of a query: each distinct term once."""
    return _pack({term_id(w): 1.0 for w in set(terms(text))})
