"""A user's conversations: list and search, open, rename, pick model and collection, delete,
export as Markdown or JSON."""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import Response
from pydantic import BaseModel, Field

from services.errors import APIError

from ...store import attachments as attached
from ...store import conversations as repo
from ...store.models import Conversation, Message
from ..deps import DbDep, RagDep, SettingsDep, UserDep
from .attachments import drop_collection, drop_collections_first

router = APIRouter(prefix="/api/conversations", tags=["conversations"])


class ConversationPatch(BaseModel):
    title: str | None = Field(None, min_length=1, max_length=200)
    model: str | None = Field(None, max_length=200)
    collection: str | None = Field(None, max_length=200)


def summary(conv: Conversation) -> dict[str, Any]:
    return {"id": conv.id, "title": conv.title, "model": conv.model,
            "collection": conv.collection, "rag_k": (conv.options or {}).get("rag_k"),
            "think": (conv.options or {}).get("think", True), "created_at": conv.created_at,
            "updated_at": conv.updated_at}


def message_view(m: Message) -> dict[str, Any]:
    return {"id": m.id, "role": m.role, "content": m.content, "status": m.status,
            "model": m.model, "sources": m.sources or [], "meta": m.meta or {},
            "created_at": m.created_at}


async def _full(db: DbDep, user_id: int, conversation_id: str) -> dict[str, Any]:
    def read(s):  # noqa: ANN001, ANN202
        conv = repo.get(s, user_id, conversation_id)
        if conv is None:
            raise APIError(404, "No such conversation.", code="conversation_not_found")
        return {**summary(conv), "messages": [message_view(m) for m in repo.messages(s, conv)]}

    return await db.run(read)


@router.get("")
async def list_conversations(user: UserDep, db: DbDep, q: str = Query("", max_length=200),
                             limit: int = Query(50, ge=1, le=200),
                             before: float | None = None) -> dict[str, Any]:
    """Newest first; `q` keeps those with words starting with each word of it."""
    rows = await db.run(lambda s: repo.listing(s, user.id, q, limit, before))
    return {"data": [summary(c) for c in rows]}


@router.get("/{conversation_id}")
async def get_conversation(conversation_id: str, user: UserDep, db: DbDep) -> dict[str, Any]:
    """One conversation with its messages (and their sources)."""
    return await _full(db, user.id, conversation_id)


@router.patch("/{conversation_id}")
async def update_conversation(conversation_id: str, body: ConversationPatch, user: UserDep,
                              db: DbDep) -> dict[str, Any]:
    """Rename; pick the model and the collection (empty string: none) for the next answers."""
    fields = body.model_dump(exclude_unset=True, exclude_none=True)
    for key in ("model", "collection"):
        if fields.get(key) == "":
            fields[key] = None

    def change(s):  # noqa: ANN001, ANN202
        conv = repo.get(s, user.id, conversation_id)
        if conv is None:
            raise APIError(404, "No such conversation.", code="conversation_not_found")
        return summary(repo.update_fields(s, conv, **fields))

    return await db.run(change)


@router.delete("/{conversation_id}")
async def delete_conversation(conversation_id: str, user: UserDep, db: DbDep,
                              rag: RagDep) -> dict[str, Any]:
    """Delete a conversation, its messages and its attached files (their rag collection)."""
    def indexed(s):  # noqa: ANN001, ANN202
        if repo.get(s, user.id, conversation_id) is None:
            raise APIError(404, "No such conversation.", code="conversation_not_found")
        return attached.indexed_of_conversation(s, conversation_id)

    # Rag down: 503 and the conversation kept, so its files are not left behind unseen.
    before = await db.run(indexed)
    await drop_collections_first(rag, set(before.values()))

    def remove(s):  # noqa: ANN001, ANN202
        conv = repo.get(s, user.id, conversation_id)
        if conv is None:
            raise APIError(404, "No such conversation.", code="conversation_not_found")
        late = attached.added_since(before, attached.indexed_of_conversation(s, conversation_id))
        repo.delete(s, conv)
        return late

    # A file attached while the collection above was being deleted.
    for collection in await db.run(remove):
        await drop_collection(rag, collection)
    return {"deleted": conversation_id}


def markdown(conv: dict[str, Any], agent: str) -> str:
    lines = [f"# {conv['title']}", "",
             f"Model: {conv['model'] or '-'}; documents: {conv['collection'] or '-'}", ""]
    for m in conv["messages"]:
        who = "You" if m["role"] == "user" else agent
        mark = "" if m["status"] == "complete" else f" ({m['status']})"
        lines += [f"## {who}{mark}", "", m["content"], ""]
        for s in m["sources"]:
            page = f", page {s['page']}" if s.get("page") is not None else ""
            lines.append(f"- [{s['n']}] {s['document']}{page}")
        if m["sources"]:
            lines.append("")
    return "\n".join(lines)


@router.get("/{conversation_id}/export", responses={200: {"content": {
    "text/markdown": {}, "application/json": {}}}})
async def export(conversation_id: str, user: UserDep, db: DbDep, settings: SettingsDep,
                 format: Literal["markdown", "json"] = "markdown") -> Response:
    """Download one conversation as Markdown or JSON."""
    conv = await _full(db, user.id, conversation_id)
    stem = re.sub(r"[^A-Za-z0-9._-]+", "-", conv["title"]).strip("-")[:60] or "conversation"
    if format == "json":
        body, kind, ext = json.dumps(conv, ensure_ascii=False, indent=2), "application/json", \
            "json"
    else:
        body, kind, ext = markdown(conv, settings.agent_name), "text/markdown", "md"
    return Response(body.encode(), media_type=f"{kind}; charset=utf-8", headers={
        "Content-Disposition": f'attachment; filename="{stem}.{ext}"'})
