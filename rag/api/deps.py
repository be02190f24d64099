"""Dependencies of the rag routes, as `Annotated` aliases over app.state."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from services.errors import APIError

from ..config import Settings
from ..embedder import Embedder
from ..ingest import Ingestor
from ..jobs import Jobs
from ..store import Store


def _settings(request: Request) -> Settings:
    return request.app.state.settings


def _store(request: Request) -> Store:
    return request.app.state.store


def _jobs(request: Request) -> Jobs:
    return request.app.state.jobs


def _embedder(request: Request) -> Embedder:
    embedder = request.app.state.embedder
    if embedder is None:
        failed = request.app.state.embedder_error is not None
        raise APIError(503, "The embedding model failed to load." if failed
                       else "The embedding model is still loading.",
                       code="embedder_failed" if failed else "loading",
                       headers={"Retry-After": "5"})
    return embedder


def _ingestor(request: Request, embedder: Annotated[Embedder, Depends(_embedder)]) -> Ingestor:
    return request.app.state.ingestor


SettingsDep = Annotated[Settings, Depends(_settings)]
StoreDep = Annotated[Store, Depends(_store)]
JobsDep = Annotated[Jobs, Depends(_jobs)]
EmbedderDep = Annotated[Embedder, Depends(_embedder)]
IngestorDep = Annotated[Ingestor, Depends(_ingestor)]
