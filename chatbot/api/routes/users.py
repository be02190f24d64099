"""The admin's page: users (add, disable, delete), sign-up, and the service's state."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.errors import APIError

from ... import auth
from ...store import attachments, logins, users
from ...store.models import User
from ..deps import AdminDep, DbDep, LLMDep, RagDep, RowId, SettingsDep
from .attachments import drop_collection, drop_collections_first
from .auth import SIGNUP

router = APIRouter(prefix="/api/admin", tags=["admin"])


class NewUser(BaseModel):
    username: str = Field(..., max_length=64)
    password: str = Field(..., max_length=1024)
    is_admin: bool = False


class UserPatch(BaseModel):
    disabled: bool | None = None
    is_admin: bool | None = None
    password: str | None = Field(None, max_length=1024)


class SettingsPatch(BaseModel):
    allow_signup: bool


def _view(user: User) -> dict[str, Any]:
    return {"id": user.id, "username": user.username, "is_admin": user.is_admin,
            "disabled": user.disabled, "created_at": user.created_at}


@router.get("/users")
async def list_users(_: AdminDep, db: DbDep) -> dict[str, Any]:
    """Every account."""
    return {"data": [_view(u) for u in await db.run(users.all_users)]}


@router.post("/users", status_code=201)
async def add_user(body: NewUser, _: AdminDep, db: DbDep) -> dict[str, Any]:
    """Add an account."""
    auth.check_credentials(body.username, body.password)
    hashed = await auth.hash_password_async(body.password)

    def create(s):  # noqa: ANN001, ANN202
        if users.by_name(s, body.username) is not None:
            raise APIError(409, "That user name is taken.", code="username_taken",
                           param="username")
        return _view(users.create(s, body.username, hashed, body.is_admin))

    return await db.run(create)


@router.patch("/users/{user_id}")
async def update_user(user_id: RowId, body: UserPatch, admin: AdminDep,
                      db: DbDep) -> dict[str, Any]:
    """Disable or enable, make admin or not, set a new password (ends their logins)."""
    if user_id == admin.id and (body.disabled or body.is_admin is False):
        raise APIError(400, "You cannot disable yourself or drop your own admin rights.",
                       code="self_lockout")
    hashed = None
    if body.password is not None:
        auth.check_credentials("x", body.password)
        hashed = await auth.hash_password_async(body.password)

    def change(s):  # noqa: ANN001, ANN202
        user = users.by_id(s, user_id)
        if user is None:
            raise APIError(404, "No such user.", code="user_not_found")
        if body.disabled is not None:
            user.disabled = body.disabled
        if body.is_admin is not None:
            user.is_admin = body.is_admin
        if hashed is not None:
            user.password_hash = hashed
        if body.disabled or hashed is not None:
            logins.end_all(s, user.id)
        return _view(user)

    return await db.run(change)


@router.delete("/users/{user_id}")
async def delete_user(user_id: RowId, admin: AdminDep, db: DbDep,
                      rag: RagDep) -> dict[str, Any]:
    """Delete an account with its conversations, logins, keys and attached files in rag."""
    if user_id == admin.id:
        raise APIError(400, "You cannot delete yourself.", code="self_lockout")

    def indexed(s):  # noqa: ANN001, ANN202
        if users.by_id(s, user_id) is None:
            raise APIError(404, "No such user.", code="user_not_found")
        return attachments.indexed_of_user(s, user_id)

    # Rag down: 503 and the account kept whole, so the admin can simply retry.
    before = await db.run(indexed)
    await drop_collections_first(rag, set(before.values()))

    def remove(s):  # noqa: ANN001, ANN202
        user = users.by_id(s, user_id)
        if user is None:
            raise APIError(404, "No such user.", code="user_not_found")
        late = attachments.added_since(before, attachments.indexed_of_user(s, user_id))
        users.delete(s, user)
        return late

    # Files attached while the collections above were being deleted.
    for collection in await db.run(remove):
        await drop_collection(rag, collection)
    return {"deleted": user_id}


@router.get("/settings")
async def get_settings(_: AdminDep, db: DbDep, settings: SettingsDep) -> dict[str, Any]:
    """Settings the admin changes here."""
    signup = await db.run(lambda s: users.get_setting(s, SIGNUP, settings.allow_signup))
    return {"allow_signup": bool(signup)}


@router.patch("/settings")
async def set_settings(body: SettingsPatch, _: AdminDep, db: DbDep) -> dict[str, Any]:
    """Allow or close sign-up."""
    await db.run(lambda s: users.set_setting(s, SIGNUP, body.allow_signup))
    return {"allow_signup": body.allow_signup}


@router.get("/status")
async def status(_: AdminDep, llm: LLMDep, rag: RagDep) -> dict[str, Any]:
    """The model servers, rag and the queue (what /health no longer tells the public)."""
    from .ops import probe

    urls = [u.url for u in llm.queue.upstreams]
    states = await asyncio.gather(*(probe(llm.http, url) for url in urls), rag.health())
    return {"upstreams": dict(zip(urls, states[:-1], strict=False)), "rag": states[-1],
            "queue": llm.queue.snapshot()}
