"""The admin's prompts: see each with its default and placeholders, edit, reset."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter
from pydantic import BaseModel, Field

from ... import templates
from ...store import prompts as repo
from ..deps import AdminDep, DbDep, SettingsDep

router = APIRouter(prefix="/api/admin/prompts", tags=["admin"])


class PromptIn(BaseModel):
    text: str = Field(..., max_length=templates.MAX_CHARS * 2)  # the exact limit says why


async def _views(db: DbDep, settings: SettingsDep) -> dict[str, Any]:
    edited = await db.run(repo.edited)
    return {"data": [{"name": t.name, "title": t.title,
                      "placeholders": ["{" + p + "}" for p in t.placeholders],
                      "default": templates.default(t.name, settings),
                      "text": edited.get(t.name, templates.default(t.name, settings)),
                      "edited": t.name in edited}
                     for t in templates.TEMPLATES.values()]}


@router.get("")
async def list_prompts(_: AdminDep, db: DbDep, settings: SettingsDep) -> dict[str, Any]:
    """Every prompt: its text now, its default, its placeholders."""
    return await _views(db, settings)


@router.put("/{name}")
async def save_prompt(name: str, body: PromptIn, admin: AdminDep, db: DbDep,
                      settings: SettingsDep) -> dict[str, Any]:
    """Replace a prompt; used from the next turn. Unknown placeholders: 400."""
    text = templates.check(name, body.text)
    await db.run(lambda s: repo.save(s, name, text, admin.username))
    return next(p for p in (await _views(db, settings))["data"] if p["name"] == name)


@router.delete("/{name}")
async def reset_prompt(name: str, _: AdminDep, db: DbDep,
                       settings: SettingsDep) -> dict[str, Any]:
    """Back to the default."""
    templates.template(name)
    await db.run(lambda s: repo.reset(s, name))
    return next(p for p in (await _views(db, settings))["data"] if p["name"] == name)
