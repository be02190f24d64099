"""Accounts: password hashing (argon2), login cookies, personal API keys, the login rate limit.

Login sessions and keys live in the database as SHA-256 digests of random tokens, so any
replica can check them and a copy of the database opens no session.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from fastapi import Request, Response

from services.errors import APIError

from .config import Settings
from .proxies import client_key
from .store import api_keys, login_attempts, logins, users
from .store.db import Database
from .store.models import User

COOKIE = "tinyllm_login"
LOCAL_USER = "local"  # the one user of CHATBOT_AUTH=none
KEY_PREFIX = "tk-"
USERNAME = re.compile(r"^[A-Za-z0-9_.@-]{1,64}$")
MIN_PASSWORD = 8
_hasher = PasswordHasher()
# Verifying against this when the user does not exist costs the same time as a real check.
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


@dataclass(frozen=True)
class Principal:
    """Who is asking (a plain value, safe to pass between threads)."""

    id: int
    username: str
    is_admin: bool

    @classmethod
    def of(cls, user: User) -> Principal:
        return cls(user.id, user.username, bool(user.is_admin))

    def view(self) -> dict:
        return {"id": self.id, "username": self.username, "is_admin": self.is_admin}


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def password_ok(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


def check_credentials(username: str, password: str) -> None:
    """Refuse names and passwords that cannot be an account (400)."""
    if not USERNAME.match(username):
        raise APIError(400, "A user name is 1-64 letters, digits or _ . @ -.",
                       code="invalid_username", param="username")
    if not MIN_PASSWORD <= len(password) <= 1024:
        raise APIError(400, f"A password has at least {MIN_PASSWORD} characters.",
                       code="weak_password", param="password")


async def hash_password_async(password: str) -> str:
    return await asyncio.to_thread(hash_password, password)  # argon2 is CPU-heavy by design


async def ensure_bootstrap_users(db: Database, settings: Settings) -> Principal | None:
    """Create the local user (auth none) or the admin named by settings; returns the local."""
    if not settings.accounts():
        def local(s):  # noqa: ANN001, ANN202
            user = users.by_name(s, LOCAL_USER)
            if user is None:
                user = users.create(s, LOCAL_USER, users.NO_PASSWORD, is_admin=True)
            return Principal.of(user)

        return await db.run(local)
    if settings.admin_user and settings.admin_password:
        name, password = settings.admin_user, settings.admin_password.get_secret_value()
        check_credentials(name, password)
        hashed = await hash_password_async(password)

        def admin(s):  # noqa: ANN001, ANN202
            if users.count(s) == 0:
                users.create(s, name, hashed, is_admin=True)

        await db.run(admin)
    return None


async def login(request: Request, response: Response, username: str, password: str) -> Principal:
    """Check the password under the rate limit; set the login cookie.

    The attempt is reserved before argon2 runs, so a burst of guesses gets the allowance of
    the account and of the client, and no more, however many replicas it is spread over.
    """
    settings: Settings = request.app.state.settings
    db: Database = request.app.state.db
    client = _client(request)
    account = f"user:{username.lower()}"
    limits = {account: settings.login_attempts, f"client:{client}": settings.login_attempts * 5}

    def reserve(s):  # noqa: ANN001, ANN202
        attempt = login_attempts.reserve(s, limits, settings.login_window_s)
        return attempt, (None if attempt.refused else users.by_name(s, username))

    attempt, user = await db.run(reserve)
    if attempt.refused:
        raise APIError(429, "Too many failed logins; try again later.", code="too_many_logins",
                       headers={"Retry-After": str(attempt.retry_after_s)})
    ok = await asyncio.to_thread(password_ok, user.password_hash if user else _DUMMY_HASH,
                                 password)
    if not ok or user is None or user.disabled:
        raise APIError(401, "Wrong user name or password.", code="invalid_login")  # it counts
    await db.run(lambda s: login_attempts.succeeded(s, attempt, account))
    return await start_session(request, response, user)


async def start_session(request: Request, response: Response, user: User) -> Principal:
    settings: Settings = request.app.state.settings
    token = secrets.token_urlsafe(32)
    await request.app.state.db.run(
        lambda s: logins.create(s, digest(token), user.id, settings.session_ttl_s))
    response.set_cookie(COOKIE, token, httponly=True, samesite="strict", path="/",
                        secure=settings.cookie_secure, max_age=int(settings.session_ttl_s))
    return Principal.of(user)


async def logout(request: Request, response: Response) -> None:
    token = request.cookies.get(COOKIE)
    if token:
        await request.app.state.db.run(lambda s: logins.end(s, digest(token)))
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict",
                           secure=request.app.state.settings.cookie_secure)


async def current_user(request: Request) -> Principal:
    """The logged-in user of a browser request (the local user when auth is none); else 401."""
    settings: Settings = request.app.state.settings
    if not settings.accounts():
        return request.app.state.local_user
    token = request.cookies.get(COOKIE)
    user = None
    if token:
        user = await request.app.state.db.run(
            lambda s: logins.user_for(s, digest(token), settings.session_ttl_s))
    if user is None:
        raise APIError(401, "Log in first.", code="login_required")
    request.state.requester = f"user:{user.id}"
    return Principal.of(user)


def _client(request: Request) -> str:
    """The client address a request counts against (X-Forwarded-For from trusted proxies)."""
    settings: Settings = request.app.state.settings
    return client_key(request.client.host if request.client else None,
                      request.headers.getlist("x-forwarded-for"),
                      settings.trusted_proxy_networks())


def requester(request: Request) -> str:
    """Whose turn a generation is in the fair queue: the account or key the auth
    dependencies recorded, else (no accounts, no key) the client address."""
    return getattr(request.state, "requester", None) or f"client:{_client(request)}"


async def require_admin(request: Request) -> Principal:
    user = await current_user(request)
    if not user.is_admin:
        raise APIError(403, "Only an admin may do this.", code="admin_only")
    return user


def new_api_key() -> tuple[str, str, str]:
    """(the key to show once, its digest to store, a prefix to recognise it by)"""
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    return key, digest(key), key[:10]


async def require_gateway_key(request: Request) -> None:
    """The OpenAI endpoint: the service key (CHATBOT_API_KEY) or a user's personal key.

    Without accounts and without a service key, the endpoint stays open (loopback laptop).
    """
    settings: Settings = request.app.state.settings
    service_key = settings.api_key.get_secret_value() if settings.api_key else None
    if service_key is None and not settings.accounts():
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise APIError(401, "Missing API key: send 'Authorization: Bearer <key>'.",
                       code="missing_api_key")
    if service_key is not None and secrets.compare_digest(token.encode(), service_key.encode()):
        request.state.requester = "service-key"
        return
    if token.startswith(KEY_PREFIX):
        user = await request.app.state.db.run(lambda s: api_keys.user_for(s, digest(token)))
        if user is not None:
            request.state.requester = f"user:{user.id}"
            return
    raise APIError(401, "Incorrect API key provided.", code="invalid_api_key")
