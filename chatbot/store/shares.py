"""Read-only share links of conversations: the link's token is stored as its SHA-256."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from .models import Conversation, ConversationShare


def create(s: Session, user_id: int, conversation_id: str, token_hash: str) -> ConversationShare:
    row = ConversationShare(user_id=user_id, conversation_id=conversation_id,
                            token_hash=token_hash)
    s.add(row)
    s.flush()
    return row


def count(s: Session, user_id: int) -> int:
    return s.scalar(select(func.count()).select_from(ConversationShare)
                    .where(ConversationShare.user_id == user_id)) or 0


def for_user(s: Session, user_id: int) -> list[tuple[ConversationShare, str]]:
    """A user's links with their conversations' titles, newest first."""
    rows = s.execute(select(ConversationShare, Conversation.title)
                     .join(Conversation, Conversation.id == ConversationShare.conversation_id)
                     .where(ConversationShare.user_id == user_id)
                     .order_by(ConversationShare.id.desc()))
    return [(share, title) for share, title in rows]


def conversation_for(s: Session, token_hash: str) -> Conversation | None:
    """The conversation a live link shows (None once revoked or deleted)."""
    return s.scalar(select(Conversation)
                    .join(ConversationShare, ConversationShare.conversation_id == Conversation.id)
                    .where(ConversationShare.token_hash == token_hash))


def revoke(s: Session, user_id: int, share_id: int) -> bool:
    """Delete one of the user's links; False if it is not theirs (or gone)."""
    row = s.get(ConversationShare, share_id)
    if row is None or row.user_id != user_id:
        return False
    s.delete(row)
    return True
