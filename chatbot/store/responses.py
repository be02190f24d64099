"""Responses kept for `previous_response_id`, each readable by its requester alone."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from .models import StoredResponse


def save(s: Session, owner: str, messages: list[dict[str, Any]],
         response: dict[str, Any]) -> None:
    user_id = int(owner.split(":", 1)[1]) if owner.startswith("user:") else None
    s.add(StoredResponse(id=response["id"], owner=owner, user_id=user_id, messages=messages,
                         response=response))


def get(s: Session, owner: str, response_id: str) -> StoredResponse | None:
    row = s.get(StoredResponse, response_id)
    return row if row is not None and row.owner == owner else None


def delete(s: Session, owner: str, response_id: str) -> bool:
    row = get(s, owner, response_id)
    if row is None:
        return False
    s.delete(row)
    return True
