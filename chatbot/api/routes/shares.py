"""Read-only links to a conversation: made, listed and revoked by its owner (logged in);
read by anyone holding the link, without a login, at `/s/<token>`.

A link shows the questions and answers only: no attached file, no retrieved snippet, no
reasoning, and no source from the conversation's own (private) collection.
"""

from __future__ import annotations

import secrets
from typing import Annotated, Any

from fastapi import APIRouter, Path, Request
from fastapi.responses import FileResponse

from services.errors import APIError

from ...auth import digest
from ...store import conversations, shares
from ...store.models import Message
from ..deps import DbDep, RowId, SettingsDep, UserDep
from .attachments import is_private
from .pages import STATIC

router = APIRouter(tags=["shares"])
MAX_SHARES = 100  # links per user
Token = Annotated[str, Path(min_length=1, max_length=100)]


def _not_found() -> APIError:
    return APIError(404, "This link was revoked or never existed.", code="share_not_found")


def public_message(m: Message) -> dict[str, Any]:
    """What a link shows of one message: no snippet, no reasoning, no private source."""
    sources = [{"n": src.get("n"), "document": src.get("document"), "page": src.get("page")}
               for src in m.sources or [] if not is_private(src.get("collection"))]
    return {"role": m.role, "content": m.content, "status": m.status, "sources": sources,
            "created_at": m.created_at}


@router.post("/api/conversations/{conversation_id}/shares", status_code=201)
async def create_share(conversation_id: str, request: Request, user: UserDep,
                       db: DbDep) -> dict[str, Any]:
    """A read-only link to one of your conversations (its token is shown only now)."""
    token = secrets.token_urlsafe(32)

    def create(s):  # noqa: ANN001, ANN202
        conv = conversations.get(s, user.id, conversation_id)
        if conv is None:
            raise APIError(404, "No such conversation.", code="conversation_not_found")
        if shares.count(s, user.id) >= MAX_SHARES:
            raise APIError(400, f"At most {MAX_SHARES} shared links; revoke one first.",
                           code="too_many_shares")
        return shares.create(s, user.id, conv.id, digest(token)), conv.title

    row, title = await db.run(create)
    path = f"/s/{token}"
    return {"id": row.id, "conversation_id": row.conversation_id, "title": title,
            "path": path, "url": str(request.base_url).rstrip("/") + path,
            "created_at": row.created_at}


@router.get("/api/shares")
async def list_shares(user: UserDep, db: DbDep) -> dict[str, Any]:
    """Your shared links (the links themselves are never shown again)."""
    rows = await db.run(lambda s: shares.for_user(s, user.id))
    return {"data": [{"id": share.id, "conversation_id": share.conversation_id, "title": title,
                      "created_at": share.created_at} for share, title in rows]}


@router.delete("/api/shares/{share_id}")
async def revoke_share(share_id: RowId, user: UserDep, db: DbDep) -> dict[str, Any]:
    """Revoke a link of yours: it stops working at once."""
    if not await db.run(lambda s: shares.revoke(s, user.id, share_id)):
        raise APIError(404, "No such shared link.", code="share_not_found")
    return {"deleted": share_id}


@router.get("/s/{token}/data")
async def shared_conversation(token: Token, db: DbDep, settings: SettingsDep) -> dict[str, Any]:
    """A shared conversation, read-only, for anyone with the link (no login)."""
    def read(s):  # noqa: ANN001, ANN202
        conv = shares.conversation_for(s, digest(token))
        if conv is None:
            raise _not_found()
        messages = [public_message(m) for m in conversations.messages(s, conv)
                    if m.role in ("user", "assistant")]
        return {"title": conv.title, "agent": settings.agent_name, "messages": messages}

    return await db.run(read)


@router.get("/s/{token}", include_in_schema=False)
async def shared_page(token: Token, db: DbDep) -> FileResponse:
    """The page of a shared conversation; 404 (the same page, saying so) once revoked."""
    live = await db.run(lambda s: shares.conversation_for(s, digest(token)) is not None)
    return FileResponse(STATIC / "shared.html", status_code=200 if live else 404,
                        headers={"Cache-Control": "no-store", "X-Robots-Tag": "noindex"})
