"""Collections: list, create (recording the embedding model), delete."""

from __future__ import annotations

import asyncio
from typing import Any

from fastapi import APIRouter, Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from services.auth import require_api_key

from ..deps import EmbedderDep, StoreDep

router = APIRouter(prefix="/collections", tags=["collections"],
                   dependencies=[Depends(require_api_key)])


class CollectionCreate(BaseModel):
    name: str = Field(..., description="1-64 letters, digits, '_' or '-', starting with a "
                                       "letter or digit.")


async def _infos(store: Any) -> list[dict[str, Any]]:
    names = await asyncio.to_thread(store.names)
    return [await asyncio.to_thread(store.info, n) for n in names]


@router.get("")
async def list_collections(store: StoreDep) -> dict[str, Any]:
    """Every collection with its embedding model, vector size, documents and points."""
    return {"data": await _infos(store)}


@router.post("")
async def create_collection(body: CollectionCreate, store: StoreDep,
                            embedder: EmbedderDep) -> JSONResponse:
    """Create a collection (201), or confirm an existing compatible one (200); 409 mismatch."""
    created = await asyncio.to_thread(store.create, body.name, embedder.name, embedder.dim)
    info = await asyncio.to_thread(store.info, body.name)
    return JSONResponse(info, status_code=201 if created else 200)


@router.get("/{name}")
async def get_collection(name: str, store: StoreDep) -> dict[str, Any]:
    """One collection's details; 404 if it does not exist."""
    return await asyncio.to_thread(store.info, name)


@router.delete("/{name}")
async def delete_collection(name: str, store: StoreDep) -> dict[str, Any]:
    """Delete a collection and all its documents; 404 if it does not exist."""
    await asyncio.to_thread(store.delete, name)
    return {"name": name, "deleted": True}
