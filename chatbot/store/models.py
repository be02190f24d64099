"""Every table of the chatbot's database (SQLAlchemy 2). Migrations live in `migrations/`.

Times are UNIX seconds (float): one type that SQLite and PostgreSQL compare alike.
Conversations and messages carry JSON `options`/`meta` columns so later features
(commands, editable prompts, attachments) extend them without a second store.
"""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column


def now() -> float:
    return time.time()


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    is_admin: Mapped[bool] = mapped_column(Boolean, default=False)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class LoginSession(Base):
    """A browser login; the cookie holds a random token, the table only its SHA-256."""

    __tablename__ = "login_sessions"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    expires_at: Mapped[float] = mapped_column(Float, index=True)


class ApiKey(Base):
    """A personal key for the OpenAI endpoint; shown once, stored as its SHA-256."""

    __tablename__ = "api_keys"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[float] = mapped_column(Float, default=now)


class LoginFailure(Base):
    """One login attempt against one limit key (the account, the client): reserved before
    the password is checked, kept as a failure unless it was right (`login_attempts`)."""

    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(200))
    at: Mapped[float] = mapped_column(Float, default=now)
    __table_args__ = (Index("ix_login_failures_key_at", "key", "at"),)


class AppSetting(Base):
    """Settings the admin changes in the page (e.g. allow sign-up)."""

    __tablename__ = "app_settings"
    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSON)


class Conversation(Base):
    __tablename__ = "conversations"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200), default="New chat")
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    collection: Mapped[str | None] = mapped_column(String(200), nullable=True)
    # Per-conversation choices beyond model and collection (room for later features).
    options: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    updated_at: Mapped[float] = mapped_column(Float, default=now)
    # One answer at a time, across replicas: a lease renewed while the answer streams.
    answering_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    __table_args__ = (Index("ix_conversations_user_updated", "user_id", "updated_at"),)


class Message(Base):
    __tablename__ = "messages"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(Integer)
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    # "chat" today; later kinds (command, attachment) share the table.
    kind: Mapped[str] = mapped_column(String(16), default="chat")
    # complete | streaming | stopped | repetition (the loop guard) | interrupted | error
    status: Mapped[str] = mapped_column(String(16), default="complete")
    model: Mapped[str | None] = mapped_column(String(200), nullable=True)
    sources: Mapped[list | None] = mapped_column(JSON, nullable=True)
    # finish_reason, cited and invalid citations, notices; later attachments.
    meta: Mapped[dict] = mapped_column(JSON, default=dict)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    updated_at: Mapped[float] = mapped_column(Float, default=now)
    __table_args__ = (Index("ix_messages_conversation_position", "conversation_id", "position",
                            unique=True),)


class SearchWord(Base):
    """Word index for conversation search: prefix lookups on an index, the same SQL on both
    backends (a LIKE scan grows with every message ever written)."""

    __tablename__ = "search_words"
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), primary_key=True)
    # Byte order on PostgreSQL too, so a prefix is one range of the index, as on SQLite.
    word: Mapped[str] = mapped_column(String(40).with_variant(String(40, collation="C"),
                                                               "postgresql"), primary_key=True)
    user_id: Mapped[int] = mapped_column(Integer)
    __table_args__ = (Index("ix_search_words_user_word", "user_id", "word"),)


class Prompt(Base):
    """A prompt the admin edited (system, documents, link); absent means the default."""

    __tablename__ = "prompts"
    name: Mapped[str] = mapped_column(String(32), primary_key=True)
    text: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[float] = mapped_column(Float, default=now)
    updated_by: Mapped[str | None] = mapped_column(String(64), nullable=True)


class Attachment(Base):
    """A file attached to one conversation: its text kept here when small, or indexed in a rag
    collection of that conversation alone (deleted with it)."""

    __tablename__ = "attachments"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(16))
    chars: Mapped[int] = mapped_column(Integer)
    text: Mapped[str | None] = mapped_column(Text, nullable=True)  # None: indexed instead
    collection: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class ConversationShare(Base):
    """A read-only link to one conversation: the link holds a random token, the table only its
    SHA-256 (as for logins). Revoked by deleting the row; gone with the conversation."""

    __tablename__ = "conversation_shares"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    conversation_id: Mapped[str] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), index=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[float] = mapped_column(Float, default=now)


class StoredResponse(Base):
    """A `/v1/responses` answer kept for `previous_response_id`: the chat messages that led
    to it with its answer, and the Response object; readable by its requester alone."""

    __tablename__ = "responses"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str] = mapped_column(String(200))
    # Set for a personal key's responses, so deleting the account deletes them.
    user_id: Mapped[int | None] = mapped_column(
        ForeignKey("users.id", ondelete="CASCADE"), nullable=True, index=True)
    messages: Mapped[list] = mapped_column(JSON)
    response: Mapped[dict] = mapped_column(JSON)
    created_at: Mapped[float] = mapped_column(Float, default=now)
    __table_args__ = (Index("ix_responses_owner_created", "owner", "created_at"),)
