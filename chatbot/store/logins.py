"""Login sessions: cookie token → user (the rate limit of logins is `login_attempts`)."""

from __future__ import annotations

from sqlalchemy import delete
from sqlalchemy.orm import Session

from .models import LoginSession, User, now


def create(s: Session, token_hash: str, user_id: int, ttl_s: float) -> LoginSession:
    t = now()
    row = LoginSession(token_hash=token_hash, user_id=user_id, created_at=t, expires_at=t + ttl_s)
    s.add(row)
    # Expired rows go when someone logs in, so the table never grows without bound.
    s.execute(delete(LoginSession).where(LoginSession.expires_at < t))
    return row


def user_for(s: Session, token_hash: str, ttl_s: float) -> User | None:
    """The active user behind a login, sliding its expiry forward once half of it passed."""
    row = s.get(LoginSession, token_hash)
    t = now()
    if row is None or row.expires_at <= t:
        return None
    user = s.get(User, row.user_id)
    if user is None or user.disabled:
        return None
    if row.expires_at - t < ttl_s / 2:
        row.expires_at = t + ttl_s
    return user


def end(s: Session, token_hash: str) -> None:
    s.execute(delete(LoginSession).where(LoginSession.token_hash == token_hash))


def end_all(s: Session, user_id: int) -> None:
    s.execute(delete(LoginSession).where(LoginSession.user_id == user_id))
