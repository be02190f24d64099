"""The chatbot's database: its cost per chat turn, and list/search at 10,000 conversations.

Used by bench/chatbot.py.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import string
import time
from pathlib import Path
from typing import Any

from sqlalchemy import insert

from chatbot.store import conversations, users
from chatbot.store.db import Database
from chatbot.store.models import Conversation, Message, SearchWord


def _vocabulary(n: int, rng: random.Random) -> list[str]:
    return ["".join(rng.choices(string.ascii_lowercase, k=rng.randint(3, 10))) for _ in range(n)]


def fill(db: Database, n_conv: int, n_msgs: int, seed: int = 7) -> tuple[int, list[str]]:
    """A user with `n_conv` conversations of `n_msgs` messages (12-40 words each), written in
    bulk with the same rows and search words the repository writes."""
    rng = random.Random(seed)
    # Zipf-like: a few words are everywhere, most are rare, as in real text.
    vocab = _vocabulary(5000, rng)
    cum, total = [], 0.0
    for i in range(len(vocab)):
        total += 1 / (i + 1)
        cum.append(total)
    uid = db.call(lambda s: users.create(s, "bench", "x")).id
    t0 = time.time() - n_conv * 60
    for start in range(0, n_conv, 500):
        convs, msgs, words = [], [], []
        for i in range(start, min(n_conv, start + 500)):
            cid = f"{i:032x}"
            texts = [" ".join(rng.choices(vocab, cum_weights=cum, k=rng.randint(12, 40)))
                     for _ in range(n_msgs)]
            convs.append({"id": cid, "user_id": uid, "title": conversations.title_from(texts[0]),
                          "options": {}, "created_at": t0 + i * 60,
                          "updated_at": t0 + i * 60 + 30})
            for p, text in enumerate(texts):
                msgs.append({"conversation_id": cid, "position": p, "content": text,
                             "role": "user" if p % 2 == 0 else "assistant", "kind": "chat",
                             "status": "complete", "meta": {}, "created_at": t0 + i * 60,
                             "updated_at": t0 + i * 60})
            bag: set[str] = set()
            for text in texts:
                bag |= conversations.words(text)
            words += [{"conversation_id": cid, "word": w, "user_id": uid} for w in bag]

        def write(s, convs=convs, msgs=msgs, words=words):  # noqa: ANN001, ANN202
            s.execute(insert(Conversation), convs)
            s.execute(insert(Message), msgs)
            s.execute(insert(SearchWord), words)

        db.call(write)
    return uid, vocab


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))]


def list_and_search(db: Database, uid: int, vocab: list[str], calls: int) -> list[dict[str, Any]]:
    """p50/p99 of the sidebar's queries (50 newest, with and without a search)."""
    queries = {"list (50 newest)": "", "search: a common word": vocab[0],
               "search: a rare word": vocab[4000], "search: 3-letter prefix": vocab[1][:3],
               "search: two words": f"{vocab[2]} {vocab[40]}", "search: no match": "zzzzqqq"}
    rows = []
    for name, q in queries.items():
        db.call(lambda s, q=q: conversations.listing(s, uid, q))  # warm the cache
        times, found = [], 0
        for _ in range(calls):
            start = time.perf_counter()
            found = len(db.call(lambda s, q=q: conversations.listing(s, uid, q)))
            times.append((time.perf_counter() - start) * 1000)
        rows.append({"query": name, "found": found, "p50": _pct(times, 50),
                     "p99": _pct(times, 99)})
    return rows


def turn_writes(db: Database, users_at_once: int, rounds: int) -> dict[str, float]:
    """Latency of a turn's database work before its first token (store question and empty
    answer) and of the writes during and after it, with `users_at_once` turns in parallel."""
    uid = db.call(lambda s: users.create(s, f"turns{users_at_once}", "x")).id

    async def one() -> tuple[float, float]:
        start = time.perf_counter()
        begun = await db.run(lambda s: conversations.begin_turn(
            s, uid, None, "How do lighthouses work in fog?", model="m", collection=None,
            lease_s=15, max_messages=200))
        before_first = time.perf_counter() - start
        cid, aid = begun.conversation.id, begun.answer_id
        start = time.perf_counter()
        await db.run(lambda s: conversations.save_partial(s, cid, aid, "Lighthouses", 15))
        await db.run(lambda s: conversations.finish_turn(
            s, cid, aid, "Lighthouses use horns in fog.", "complete", None, {}))
        return before_first, time.perf_counter() - start

    async def main() -> list[tuple[float, float]]:
        out: list[tuple[float, float]] = []
        for _ in range(rounds):
            out += await asyncio.gather(*(one() for _ in range(users_at_once)))
        return out

    results = asyncio.run(main())
    first = [r[0] * 1000 for r in results]
    rest = [r[1] * 1000 for r in results]
    return {"users": users_at_once, "first_p50": statistics.median(first),
            "first_p95": _pct(first, 95), "rest_p50": statistics.median(rest)}


def run_store(tmp: Path, quick: bool) -> tuple[list[dict[str, Any]], list[dict[str, float]],
                                               float, int]:
    n_conv = 10_000
    db = Database(f"sqlite:///{tmp / 'bench.db'}")
    db.migrate()
    start = time.perf_counter()
    uid, vocab = fill(db, n_conv, 20)
    fill_s = time.perf_counter() - start
    rows = list_and_search(db, uid, vocab, 100 if quick else 400)
    writes = [turn_writes(db, n, 10 if quick else 30) for n in (1, 8)]
    db.close()
    return rows, writes, fill_s, n_conv
