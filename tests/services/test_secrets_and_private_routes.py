"""Secrets never show where settings are printed; /metrics and the API docs need the key."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from chatbot.config import Settings as ChatbotSettings
from chatbot.main import create_app as create_chatbot
from services.app import base_app
from services.config import ServiceSettings, shown
from tinyllm.envdoc import render
from tinyllm.procs import REPO

PRIVATE = ["/metrics", "/docs", "/openapi.json"]
KEY = {"Authorization": "Bearer s3cret"}


@pytest.mark.parametrize("name,value,expected", [
    ("database_url", "postgresql://user:secret@host/db", "postgresql://user:***@host/db"),
    ("database_url", "postgresql://:secret@host:5432/db", "postgresql://:***@host:5432/db"),
    ("llm_urls", "http://a:secret@h1/v1,http://h2/v1", "http://a:***@h1/v1,http://h2/v1"),
    ("rag_url", "http://127.0.0.1:8001", "http://127.0.0.1:8001"),
    ("qdrant_api_key", "secret", "(set)"),
    ("hf_token", "secret", "(set)"),
    ("admin_password", "secret", "(set)"),
    ("port", 8000, "8000"),
    ("api_key", None, "None"),
])
def test_shown_masks_secrets(name: str, value: object, expected: str) -> None:
    assert shown(name, value) == expected


def test_help_masks_secrets_from_the_environment() -> None:
    env = {**os.environ, "CHATBOT_DATABASE_URL": "postgresql://user:secret@host/db",
           "CHATBOT_ADMIN_PASSWORD": "secret", "CHATBOT_LLM_API_KEY": "secret",
           "CHATBOT_API_KEY": "secret"}
    result = subprocess.run([sys.executable, "-m", "chatbot", "--help"], capture_output=True,
                            text=True, cwd=REPO, env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    assert "secret" not in result.stdout
    assert "Now: postgresql://user:***@host/db" in result.stdout
    assert "CHATBOT_ADMIN_PASSWORD\n" in result.stdout


def test_env_example_shows_defaults_not_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CHATBOT_DATABASE_URL", "postgresql://user:secret@host/db")
    text = render()
    assert "secret" not in text
    assert "\nCHATBOT_DATABASE_URL=\n" in text


def _base(api_key: str | None, _tmp: Path) -> FastAPI:
    return base_app(ServiceSettings(api_key=api_key, allowed_hosts="*"), "test")


def _chatbot(api_key: str | None, tmp: Path) -> FastAPI:
    return create_chatbot(ChatbotSettings(api_key=api_key, auth="none", allowed_hosts="*",
                                          database_url=f"sqlite:///{tmp / 'chatbot.db'}"))


APPS = pytest.mark.parametrize("factory", [_base, _chatbot], ids=["base", "chatbot"])


@APPS
@pytest.mark.parametrize("path", PRIVATE)
def test_private_routes_need_the_key(factory: Callable[[str | None, Path], FastAPI],
                                     path: str, tmp_path: Path) -> None:
    with TestClient(factory("s3cret", tmp_path)) as client:
        response = client.get(path)
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "missing_api_key"
        wrong = client.get(path, headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        assert wrong.json()["error"]["code"] == "invalid_api_key"
        assert client.get(path, headers=KEY).status_code == 200


@APPS
def test_private_routes_are_public_without_a_key(
        factory: Callable[[str | None, Path], FastAPI], tmp_path: Path) -> None:
    with TestClient(factory(None, tmp_path)) as client:
        for path in PRIVATE:
            assert client.get(path).status_code == 200, path
        assert "/openapi.json" in client.get("/docs").text
        assert client.get("/openapi.json").json()["info"]["title"].startswith("TinyLLM")


def test_redoc_is_not_served(tmp_path: Path) -> None:
    with TestClient(_base(None, tmp_path)) as client:
        assert client.get("/redoc").status_code == 404
