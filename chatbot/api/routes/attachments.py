"""Files attached to one conversation: small ones go into the prompt whole, large ones are
indexed in a rag collection of that conversation alone (deleted with the conversation)."""

from __future__ import annotations

import asyncio
import logging
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile

from services.errors import APIError

from ... import links
from ...rag_client import RAG_UNAVAILABLE
from ...store import attachments as repo
from ...store import conversations
from ...store.models import Conversation
from ..deps import DbDep, RagDep, SettingsDep, UserDep

log = logging.getLogger(__name__)
router = APIRouter(prefix="/api/attachments", tags=["attachments"])
PREFIX = "conv-"  # rag collections of single conversations: conv-<conversation id>


def collection_of(conversation_id: str) -> str:
    return PREFIX + conversation_id


def is_private(name: str | None) -> bool:
    """A conversation's own collection: reached only through that conversation's files."""
    return bool(name) and name.lower().startswith(PREFIX)  # type: ignore[union-attr]


def refuse_private(name: str | None) -> None:
    if is_private(name):
        raise APIError(404, f"No collection named {name!r}.", code="collection_not_found",
                       param="collection")


async def no_private_collection(request: Request) -> None:
    """Router guard of the documents proxy: conversation collections are not documents."""
    refuse_private(request.path_params.get("name"))


async def drop_collection(rag: Any, name: str) -> None:
    """Best effort: a collection left behind is logged, not an error for the user."""
    try:
        await rag.call("DELETE", f"/collections/{name}")
    except APIError as exc:
        if exc.status != 404:
            log.warning("could not delete rag collection %s: %s", name, exc.message)


async def drop_collections_first(rag: Any, names: set[str]) -> None:
    """Delete these collections before their owner's rows: rag down refuses the deletion.

    Refusing (503, nothing of the owner deleted) rather than deleting the rows anyway: a
    collection whose rows are gone is a private file nobody can see or delete any more.
    A collection already gone (404) counts as deleted, so a retry after a partial run
    finishes the job.
    """
    for name in sorted(names):
        try:
            await rag.call("DELETE", f"/collections/{name}")
        except APIError as exc:
            if exc.status == 404:
                continue
            log.warning("could not delete rag collection %s: %s", name, exc.message)
            raise APIError(503, "The document service is unavailable: the attached files "
                           "cannot be deleted, so the deletion was refused. Try again later.",
                           code=RAG_UNAVAILABLE, headers={"Retry-After": "2"}) from exc


@router.post("", status_code=201)
async def attach(user: UserDep, settings: SettingsDep, db: DbDep, rag: RagDep,
                 file: Annotated[UploadFile, File(description="The document.")],
                 conversation_id: Annotated[str | None, Form(max_length=32)] = None
                 ) -> dict[str, Any]:
    """Attach a document to a conversation (a new one when none is named)."""
    from services.extract import display_name

    name = display_name(file.filename)
    data = await file.read()
    if not data:
        raise APIError(400, "The file is empty.", code="empty_file", param="file")
    if conversation_id is not None:
        found = await db.run(lambda s: conversations.get(s, user.id, conversation_id or ""))
        if found is None:
            raise APIError(404, "No such conversation.", code="conversation_not_found")
    cid = conversation_id or uuid.uuid4().hex
    text, kind = await asyncio.to_thread(links.extracted_text, data, name)
    collection = None
    if len(text) > settings.attach_inline_chars:  # too big for the prompt: index it
        collection = collection_of(cid)
        await rag.call("POST", f"/collections/{collection}/documents", timeout=600,
                       files={"files": (name, data, file.content_type or "text/plain")})

    def store(s):  # noqa: ANN001, ANN202
        if conversation_id is None:
            s.add(Conversation(id=cid, user_id=user.id, title=name[:200], options={}))
            s.flush()
        return repo.view(repo.add(s, cid, name, kind, len(text),
                                  None if collection else text, collection))

    try:
        view = await db.run(store)
    except Exception:
        if collection and conversation_id is None:
            await drop_collection(rag, collection)
        raise
    return {"conversation_id": cid, "attachment": view}


@router.get("")
async def listing(user: UserDep, db: DbDep, conversation_id: str) -> dict[str, Any]:
    """The files of one conversation."""
    def read(s):  # noqa: ANN001, ANN202
        if conversations.get(s, user.id, conversation_id) is None:
            raise APIError(404, "No such conversation.", code="conversation_not_found")
        return [repo.view(a) for a in repo.of(s, conversation_id)]

    return {"data": await db.run(read)}
