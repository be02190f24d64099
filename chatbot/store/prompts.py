"""The prompts the admin edited, by name (a missing row means the default)."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Prompt, now


def edited(s: Session) -> dict[str, str]:
    return dict(s.execute(select(Prompt.name, Prompt.text)).tuples().all())


def save(s: Session, name: str, text: str, by: str | None) -> None:
    row = s.get(Prompt, name)
    if row is None:
        s.add(Prompt(name=name, text=text, updated_at=now(), updated_by=by))
    else:
        row.text, row.updated_at, row.updated_by = text, now(), by


def reset(s: Session, name: str) -> None:
    row = s.get(Prompt, name)
    if row is not None:
        s.delete(row)
