"""Files attached to conversations."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from .models import Attachment


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


def view(a: Attachment) -> dict[str, Any]:
    return {"id": a.id, "name": a.name, "kind": a.kind, "chars": a.chars,
            "indexed": a.collection is not None, "created_at": a.created_at}
