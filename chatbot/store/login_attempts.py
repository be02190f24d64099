"""The login rate limit: attempts reserved before the password is checked, in a sliding window.

An attempt is a row per limit key (the account, the client). `reserve` decides and writes in
one transaction that no other attempt on the same keys can interleave with, on any replica:
PostgreSQL takes a transaction advisory lock per key; SQLite has one writer at a time and the
transaction writes first. A reserved row stays as a failure unless the login succeeds.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

from sqlalchemy import delete, func, or_, select, text
from sqlalchemy.orm import Session

from .models import LoginFailure, now

LOCK_SPACE = 5_000_002  # first key of the (int, int) advisory locks that guard login keys
PRUNE_BATCH = 500  # expired rows deleted per attempt: enough to keep up, never a long delete


@dataclass(frozen=True)
class Reservation:
    """An attempt that may check its password (`ids`), or a refusal (`retry_after_s`)."""

    ids: tuple[int, ...] = ()
    retry_after_s: int = 0

    @property
    def refused(self) -> bool:
        return not self.ids


def reserve(s: Session, limits: dict[str, int], window_s: float) -> Reservation:
    """Count this attempt against every key, or refuse it if any key is at its limit.

    Args:
        limits: the attempts each key allows in the window, e.g. {"user:ann": 10}.
        window_s: the sliding window, seconds.
    """
    t = now()
    since = t - window_s
    if s.get_bind().dialect.name == "postgresql":
        _lock(s, limits)
    # On SQLite this is the transaction's first write, which takes the database's one write
    # lock: no other process counts these keys until we commit.
    _prune(s, since)
    waits = [_wait(s, key, limit, since, window_s, t) for key, limit in limits.items()]
    if any(waits):
        return Reservation(retry_after_s=max(waits))
    rows = [LoginFailure(key=key, at=t) for key in limits]
    s.add_all(rows)
    s.flush()
    return Reservation(ids=tuple(row.id for row in rows))


def succeeded(s: Session, reservation: Reservation, account_key: str) -> None:
    """A right password: the account's failures are forgiven, and the attempt counts nowhere
    (a client that logs in does not use up its allowance)."""
    s.execute(delete(LoginFailure).where(or_(LoginFailure.key == account_key,
                                             LoginFailure.id.in_(reservation.ids))))


def _lock(s: Session, keys: dict[str, int]) -> None:
    # Sorted, so two attempts that share keys take them in one order and never deadlock.
    # READ COMMITTED (the default): the counts after the lock see every earlier commit.
    for key_id in sorted({_lock_id(key) for key in keys}):
        s.execute(text("SELECT pg_advisory_xact_lock(CAST(:space AS integer), "
                       "CAST(:key AS integer))"),
                  {"space": LOCK_SPACE, "key": key_id})


def _lock_id(key: str) -> int:
    # Two keys sharing an id only wait for each other; the limit stays exact.
    return int.from_bytes(hashlib.sha256(key.encode()).digest()[:4], "big", signed=True)


def _prune(s: Session, since: float) -> None:
    # SKIP LOCKED: rows another attempt is deleting are left to it, so attempts never wait on
    # each other here (SQLite, with one writer, renders no FOR UPDATE).
    expired = (select(LoginFailure.id).where(LoginFailure.at < since).limit(PRUNE_BATCH)
               .with_for_update(skip_locked=True))
    s.execute(delete(LoginFailure).where(LoginFailure.id.in_(expired)))


def _wait(s: Session, key: str, limit: int, since: float, window_s: float, t: float) -> int:
    """Whole seconds until `key` is under its limit again; 0 when it is now."""
    recent = LoginFailure.key == key, LoginFailure.at >= since
    count = s.scalar(select(func.count()).select_from(LoginFailure).where(*recent)) or 0
    if count < limit:
        return 0
    # Under the limit once the oldest `count - limit + 1` attempts leave the window.
    freed = s.scalar(select(LoginFailure.at).where(*recent).order_by(LoginFailure.at)
                     .offset(count - limit).limit(1))
    # Another replica's clock may be a little ahead of this one's: never past the window.
    wait = math.ceil((freed if freed is not None else t) + window_s - t)
    return max(1, min(wait, math.ceil(window_s)))
