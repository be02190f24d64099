"""Personal API keys for the OpenAI endpoint on this port (shown once)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from services.errors import APIError

from ... import auth
from ...store import api_keys
from ..deps import DbDep, RowId, UserDep

router = APIRouter(prefix="/api/keys", tags=["keys"])
MAX_KEYS = 20


class KeyIn(BaseModel):
    name: str = Field(..., min_length=1, max_length=100)


@router.get("")
async def list_keys(user: UserDep, db: DbDep) -> dict[str, Any]:
    """Your keys (name and prefix; the key itself is never shown again)."""
    rows = await db.run(lambda s: api_keys.for_user(s, user.id))
    return {"data": [{"id": k.id, "name": k.name, "prefix": k.prefix,
                      "created_at": k.created_at} for k in rows]}


@router.post("", status_code=201)
async def create_key(body: KeyIn, user: UserDep, db: DbDep) -> dict[str, Any]:
    """A new key: `Authorization: Bearer <key>` on /v1."""
    key, hashed, prefix = auth.new_api_key()

    def create(s):  # noqa: ANN001, ANN202
        if len(api_keys.for_user(s, user.id)) >= MAX_KEYS:
            raise APIError(400, f"At most {MAX_KEYS} keys; delete one first.",
                           code="too_many_keys")
        return api_keys.create(s, user.id, body.name, hashed, prefix)

    row = await db.run(create)
    return {"id": row.id, "name": row.name, "prefix": prefix, "key": key,
            "created_at": row.created_at}


@router.delete("/{key_id}")
async def delete_key(key_id: RowId, user: UserDep, db: DbDep) -> dict[str, Any]:
    """Revoke a key."""
    if not await db.run(lambda s: api_keys.delete(s, user.id, key_id)):
        raise APIError(404, "No such key.", code="key_not_found")
    return {"deleted": key_id}
