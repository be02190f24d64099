"""Dependencies of llmserver's routes, as Annotated aliases."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from ..config import Settings
from ..inference import Inference


def get_inference(request: Request) -> Inference:
    return request.app.state.inference


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


InferenceDep = Annotated[Inference, Depends(get_inference)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
