"""Conversations and their messages: list, search, open, rename, delete, and the writes of a turn.

A turn is two writes: `begin_turn` (take the conversation's lease, store the question and an
empty answer marked streaming) and `finish_turn`; `save_partial` renews the lease with the
text so far, so a crash leaves the partial answer, shown as interrupted once the lease lapses.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete as sql_delete
from sqlalchemy import exists, func, literal, or_, select, update
from sqlalchemy.orm import Session

from services.errors import APIError

from .models import Conversation, Message, SearchWord, now

WORD = re.compile(r"\w{2,40}")
MAX_TERMS = 6
TOP = "\U0010ffff"  # sorts after every character: [term, term+TOP) holds the words it begins
TITLE_CHARS = 80
COMMON = 1000  # a term in more conversations than this is checked newest-first, not gathered


def words(text: str) -> set[str]:
    return set(WORD.findall(text.lower()))


def title_from(text: str) -> str:
    line = " ".join(text.split())
    return (line[:TITLE_CHARS - 1] + "…") if len(line) > TITLE_CHARS else (line or "New chat")


def get(s: Session, user_id: int, conversation_id: str) -> Conversation | None:
    """The user's conversation, or None (another user's is as absent as a missing one)."""
    conv = s.get(Conversation, conversation_id)
    return conv if conv is not None and conv.user_id == user_id else None


def listing(s: Session, user_id: int, query: str = "", limit: int = 50,
            before: float | None = None) -> list[Conversation]:
    """Newest first; `query` keeps those with a word starting with each of its words."""
    stmt = select(Conversation).where(Conversation.user_id == user_id)
    if before is not None:
        stmt = stmt.where(Conversation.updated_at < before)
    terms = sorted(words(query), key=len, reverse=True)[:MAX_TERMS]
    if terms:
        def in_range(term: str) -> Any:
            return (SearchWord.user_id == user_id, SearchWord.word >= term,
                    SearchWord.word < term + TOP)

        def count(term: str) -> int:  # capped: a common prefix reads COMMON rows, not all
            sub = select(literal(1)).where(*in_range(term)).limit(COMMON).subquery()
            return s.scalar(select(func.count()).select_from(sub)) or 0

        # Drive from the rarest term: gather its few conversations; when even that one is
        # everywhere, walk the newest conversations and stop at `limit` matches.
        counted = sorted((count(t), t) for t in terms)
        n, rarest = counted[0]
        if n < COMMON:
            stmt = stmt.where(Conversation.id.in_(
                select(SearchWord.conversation_id).where(*in_range(rarest))))
            rest = [t for _, t in counted[1:]]
        else:
            rest = [t for _, t in counted]
        for term in rest:
            stmt = stmt.where(exists().where(
                SearchWord.conversation_id == Conversation.id, SearchWord.word >= term,
                SearchWord.word < term + TOP))
    return list(s.scalars(stmt.order_by(Conversation.updated_at.desc()).limit(limit)))


def index_words(s: Session, conv: Conversation, texts: Iterable[str]) -> None:
    """Add the words of `texts` to the conversation's search index."""
    new: set[str] = set()
    for text in texts:
        new |= words(text)
    if not new:
        return
    have = set(s.scalars(select(SearchWord.word).where(
        SearchWord.conversation_id == conv.id, SearchWord.word.in_(new))))
    s.add_all(SearchWord(conversation_id=conv.id, word=w, user_id=conv.user_id)
              for w in new - have)


def reindex(s: Session, conv: Conversation) -> None:
    """Rebuild the index after messages were removed (edit, regenerate)."""
    s.execute(sql_delete(SearchWord).where(SearchWord.conversation_id == conv.id))
    s.flush()
    index_words(s, conv, [conv.title, *s.scalars(select(Message.content).where(
        Message.conversation_id == conv.id))])


def update_fields(s: Session, conv: Conversation, **fields: Any) -> Conversation:
    for key, value in fields.items():
        setattr(conv, key, value)
    if "title" in fields:
        conv.options = {**(conv.options or {}), "renamed": True}  # a new dict: JSON is not tracked
        index_words(s, conv, [fields["title"]])
    return conv


def delete(s: Session, conv: Conversation) -> None:
    s.delete(conv)


def messages(s: Session, conv: Conversation) -> list[Message]:
    """The messages in order; an answer whose writer stopped renewing the lease is marked
    interrupted (its process died mid-answer)."""
    rows = list(s.scalars(select(Message).where(Message.conversation_id == conv.id)
                          .order_by(Message.position)))
    if (conv.answering_until or 0) < now():
        for m in rows:
            if m.status == "streaming":
                m.status = "interrupted"
    return rows


def count_messages(s: Session, conv: Conversation) -> int:
    return s.scalar(select(func.count()).select_from(Message)
                    .where(Message.conversation_id == conv.id)) or 0


@dataclass
class Begun:
    conversation: Conversation
    history: list[dict[str, str]]  # what the model sees before this turn, question included
    question: str
    answer_id: int
    model: str
    collection: str | None
    options: dict[str, Any]  # the conversation's choices (rag_k, think)
    question_id: int | None = None  # the stored question (asked again when regenerating)


def _take_lease(s: Session, conv: Conversation, lease_s: float) -> None:
    t = now()
    taken = s.execute(update(Conversation).where(
        Conversation.id == conv.id,
        or_(Conversation.answering_until.is_(None), Conversation.answering_until < t))
        .values(answering_until=t + lease_s)).rowcount
    if not taken:
        raise APIError(409, "An answer is still being written in this chat.",
                       code="answer_in_progress")
    s.refresh(conv)


def begin_turn(s: Session, user_id: int, conversation_id: str | None, text: str | None, *,
               model: str, collection: str | None, edit_id: int | None = None,
               lease_s: float, max_messages: int,
               options: dict[str, Any] | None = None) -> Begun:
    """Store the question (new, edited, or the last one again) and an empty answer.

    Args:
        conversation_id: None starts a new conversation.
        text: the question; None regenerates the answer to the last question.
        edit_id: a user message to replace; everything from it on is removed.
        options: choices to keep with the conversation (merged into its options).
    """
    if conversation_id is None:
        return _begin_new(s, user_id, text or "", model=model, collection=collection,
                          lease_s=lease_s, options=options)
    found = get(s, user_id, conversation_id)
    if found is None:
        raise APIError(404, "No such conversation.", code="conversation_not_found")
    conv = found
    _take_lease(s, conv, lease_s)
    rows = messages(s, conv)
    regenerate = text is None
    if text is None:  # regenerate: drop the answers after the last question
        last_user = max((i for i, m in enumerate(rows) if m.role == "user"), default=None)
        if last_user is None:
            raise APIError(400, "There is no question to answer again.",
                           code="nothing_to_regenerate")
        text = rows[last_user].content
        cut = last_user + 1
    elif edit_id is not None:
        cut = next((i for i, m in enumerate(rows) if m.id == edit_id and m.role == "user"), -1)
        if cut < 0:
            raise APIError(404, "No such message of yours in this conversation.",
                           code="message_not_found", param="edit")
    else:
        cut = len(rows)
    kept, removed = rows[:cut], rows[cut:]
    if len(kept) + 2 > max_messages:
        raise APIError(400, f"This chat reached {max_messages} messages; start a new chat.",
                       code="too_many_messages")
    for m in removed:
        s.delete(m)
    s.flush()
    t = now()
    rows, answer = _turn_rows(conv.id, (kept[-1].position + 1) if kept else 0,
                              None if regenerate else text, model, t)
    s.add_all(rows)
    if not kept and not conv.options.get("renamed"):
        conv.title = title_from(text)
    conv.updated_at = t
    conv.model, conv.collection = model, collection
    if options:
        conv.options = {**(conv.options or {}), **options}  # a new dict: JSON is not tracked
    s.flush()
    if removed:
        reindex(s, conv)
    else:
        index_words(s, conv, [conv.title, text])
    history = [{"role": m.role, "content": m.content} for m in kept if m.content]
    if not regenerate:
        history.append({"role": "user", "content": text})
    question_id = kept[-1].id if regenerate else rows[0].id
    return Begun(conv, history, text, answer.id, model, collection, dict(conv.options or {}),
                 question_id)


def _begin_new(s: Session, user_id: int, text: str, *, model: str, collection: str | None,
               lease_s: float, options: dict[str, Any] | None) -> Begun:
    """A new conversation's first turn: nothing to read, one flush (the answer's id)."""
    t = now()
    conv = Conversation(id=uuid.uuid4().hex, user_id=user_id, model=model,
                        collection=collection, title=title_from(text), options=dict(options or {}),
                        created_at=t, updated_at=t, answering_until=t + lease_s)
    rows, answer = _turn_rows(conv.id, 0, text, model, t)
    s.add_all([conv, *rows])
    s.add_all(SearchWord(conversation_id=conv.id, word=w, user_id=user_id)
              for w in words(conv.title) | words(text))
    s.flush()
    return Begun(conv, [{"role": "user", "content": text}], text, answer.id, model, collection,
                 dict(conv.options), rows[0].id)


def _turn_rows(conversation_id: str, position: int, question: str | None, model: str,
               t: float) -> tuple[list[Message], Message]:
    """What a turn adds from `position` on: the question (None: answering it again) and an
    empty answer, which is also returned alone."""
    rows = [] if question is None else [Message(
        conversation_id=conversation_id, position=position, role="user", content=question,
        created_at=t, updated_at=t, meta={})]
    answer = Message(conversation_id=conversation_id, position=position + len(rows),
                     role="assistant", content="", status="streaming", model=model, created_at=t,
                     updated_at=t, meta={})
    return [*rows, answer], answer


def save_partial(s: Session, conversation_id: str, answer_id: int, content: str,
                 lease_s: float) -> None:
    """Keep the text so far and renew the lease (a heartbeat of the writing replica)."""
    t = now()
    s.execute(update(Message).where(Message.id == answer_id)
              .values(content=content, updated_at=t))
    s.execute(update(Conversation).where(Conversation.id == conversation_id)
              .values(answering_until=t + lease_s))


def finish_turn(s: Session, conversation_id: str, answer_id: int, content: str, status: str,
                sources: list | None, meta: dict) -> None:
    """The final answer (complete, stopped or error); releases the lease."""
    t = now()
    conv = s.get(Conversation, conversation_id)
    answer = s.get(Message, answer_id)
    if answer is not None:
        answer.content, answer.status, answer.updated_at = content, status, t
        answer.sources, answer.meta = sources, meta
    if conv is not None:
        conv.answering_until = None
        conv.updated_at = t
        index_words(s, conv, [content])
