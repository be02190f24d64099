"""Users and the admin's page settings."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import AppSetting, User

NO_PASSWORD = "!"  # the local user of CHATBOT_AUTH=none: no password can match it


def count(s: Session) -> int:
    """Accounts someone can log in to (the local user of auth none does not count, so a
    chatbot switched to accounts still asks for its first admin)."""
    return s.scalar(select(func.count()).select_from(User)
                    .where(User.password_hash != NO_PASSWORD)) or 0


def by_name(s: Session, username: str) -> User | None:
    return s.scalar(select(User).where(User.username == username))


def by_id(s: Session, user_id: int) -> User | None:
    return s.get(User, user_id)


def all_users(s: Session) -> list[User]:
    return list(s.scalars(select(User).order_by(User.id)))


def create(s: Session, username: str, password_hash: str, is_admin: bool = False) -> User:
    user = User(username=username, password_hash=password_hash, is_admin=is_admin)
    s.add(user)
    s.flush()
    return user


def delete(s: Session, user: User) -> None:
    s.delete(user)


def get_setting(s: Session, key: str, default: Any = None) -> Any:
    row = s.get(AppSetting, key)
    return default if row is None else row.value


def set_setting(s: Session, key: str, value: Any) -> None:
    row = s.get(AppSetting, key)
    if row is None:
        s.add(AppSetting(key=key, value=value))
    else:
        row.value = value
