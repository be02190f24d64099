"""Personal API keys for the OpenAI endpoint (stored as SHA-256, shown once)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import ApiKey, User


def create(s: Session, user_id: int, name: str, key_hash: str, prefix: str) -> ApiKey:
    row = ApiKey(user_id=user_id, name=name, key_hash=key_hash, prefix=prefix)
    s.add(row)
    s.flush()
    return row


def for_user(s: Session, user_id: int) -> list[ApiKey]:
    return list(s.scalars(select(ApiKey).where(ApiKey.user_id == user_id).order_by(ApiKey.id)))


def user_for(s: Session, key_hash: str) -> User | None:
    row = s.scalar(select(ApiKey).where(ApiKey.key_hash == key_hash))
    if row is None:
        return None
    user = s.get(User, row.user_id)
    return None if user is None or user.disabled else user


def delete(s: Session, user_id: int, key_id: int) -> bool:
    row = s.get(ApiKey, key_id)
    if row is None or row.user_id != user_id:
        return False
    s.delete(row)
    return True
