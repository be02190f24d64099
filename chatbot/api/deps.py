"""Dependencies of the chatbot's routes, as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Path, Request

from ..auth import Principal, current_user, require_admin
from ..config import Settings
from ..llm import LLMClient
from ..rag_client import RagClient
from ..store.db import Database


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_llm(request: Request) -> LLMClient:
    return request.app.state.llm


def get_rag(request: Request) -> RagClient:
    return request.app.state.rag


def get_db(request: Request) -> Database:
    return request.app.state.db


SettingsDep = Annotated[Settings, Depends(get_settings)]
LLMDep = Annotated[LLMClient, Depends(get_llm)]
RagDep = Annotated[RagClient, Depends(get_rag)]
DbDep = Annotated[Database, Depends(get_db)]
UserDep = Annotated[Principal, Depends(current_user)]
AdminDep = Annotated[Principal, Depends(require_admin)]
# A database row id in a path: the databases' 64-bit integers, so a huge one is a 400, not a
# driver's overflow.
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
