"""Dependencies of the chatbot's routes, as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..config import Settings
from ..llm import LLMClient
from ..rag_client import RagClient
from ..sessions import SessionStore


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_llm(request: Request) -> LLMClient:
    return request.app.state.llm


def get_rag(request: Request) -> RagClient:
    return request.app.state.rag


def get_sessions(request: Request) -> SessionStore:
    return request.app.state.sessions


SettingsDep = Annotated[Settings, Depends(get_settings)]
LLMDep = Annotated[LLMClient, Depends(get_llm)]
RagDep = Annotated[RagClient, Depends(get_rag)]
SessionsDep = Annotated[SessionStore, Depends(get_sessions)]
