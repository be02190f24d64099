"""Files attached to conversations."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Attachment, Conversation


def add(s: Session, conversation_id: str, name: str, kind: str, chars: int,
        text: str | None, collection: str | None) -> Attachment:
    row = Attachment(conversation_id=conversation_id, name=name, kind=kind, chars=chars,
                     text=text, collection=collection)
    s.add(row)
    s.flush()
    return row


def of(s: Session, conversation_id: str) -> list[Attachment]:
    return list(s.scalars(select(Attachment).where(Attachment.conversation_id == conversation_id)
                          .order_by(Attachment.id)))


def indexed_of_conversation(s: Session, conversation_id: str) -> dict[int, str]:
    """The rag collection of each indexed file of this conversation, by attachment id."""
    rows = s.execute(select(Attachment.id, Attachment.collection).where(
        Attachment.conversation_id == conversation_id))
    return {key: name for key, name in rows if name}


def indexed_of_user(s: Session, user_id: int) -> dict[int, str]:
    """The rag collection of each indexed file of every conversation of this user."""
    rows = s.execute(select(Attachment.id, Attachment.collection).join(Conversation).where(
        Conversation.user_id == user_id))
    return {key: name for key, name in rows if name}


def added_since(before: dict[int, str], now: dict[int, str]) -> set[str]:
    """Collections of files attached between two reads (their collection may be new)."""
    return {name for key, name in now.items() if key not in before}


def view(a: Attachment) -> dict[str, Any]:
    return {"id": a.id, "name": a.name, "kind": a.kind, "chars": a.chars,
            "indexed": a.collection is not None, "created_at": a.created_at}
