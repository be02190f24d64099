"""Logging in and out: first-run admin setup, login, sign-up, logout, who am I."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request, Response
from pydantic import BaseModel, Field

from services.errors import APIError

from ... import auth
from ...store import users
from ..deps import DbDep, SettingsDep, UserDep

router = APIRouter(prefix="/api", tags=["auth"])
SIGNUP = "allow_signup"


class Credentials(BaseModel):
    username: str = Field(..., max_length=64)
    password: str = Field(..., max_length=1024)


@router.get("/auth/state")
async def state(db: DbDep, settings: SettingsDep) -> dict[str, Any]:
    """What the login page shows: accounts or not, first-run setup, sign-up allowed."""
    if not settings.accounts():
        return {"accounts": False, "setup_needed": False, "signup": False}

    def read(s):  # noqa: ANN001, ANN202
        return users.count(s) == 0, bool(users.get_setting(s, SIGNUP, settings.allow_signup))

    setup_needed, signup = await db.run(read)
    return {"accounts": True, "setup_needed": setup_needed, "signup": signup}


async def _create_and_login(request: Request, response: Response, body: Credentials,
                            admin_first: bool) -> dict[str, Any]:
    settings = request.app.state.settings
    if not settings.accounts():
        raise APIError(400, "Accounts are off (CHATBOT_AUTH=none).", code="accounts_disabled")
    auth.check_credentials(body.username, body.password)
    hashed = await auth.hash_password_async(body.password)

    def create(s):  # noqa: ANN001, ANN202
        empty = users.count(s) == 0
        if admin_first and not empty:
            raise APIError(409, "The admin account exists already; log in.",
                           code="setup_done")
        if not admin_first and not users.get_setting(s, SIGNUP, settings.allow_signup):
            raise APIError(403, "Sign-up is closed; ask the admin for an account.",
                           code="signup_closed")
        if users.by_name(s, body.username) is not None:
            raise APIError(409, "That user name is taken.", code="username_taken",
                           param="username")
        return users.create(s, body.username, hashed, is_admin=empty)

    user = await request.app.state.db.run(create)
    return {"user": (await auth.start_session(request, response, user)).view()}


@router.post("/auth/setup")
async def setup(body: Credentials, request: Request, response: Response) -> dict[str, Any]:
    """First run: the first account becomes the admin (refused once any account exists)."""
    return await _create_and_login(request, response, body, admin_first=True)


@router.post("/auth/signup")
async def signup(body: Credentials, request: Request, response: Response) -> dict[str, Any]:
    """Create an account when the admin allows sign-up."""
    return await _create_and_login(request, response, body, admin_first=False)


@router.post("/auth/login")
async def login(body: Credentials, request: Request, response: Response) -> dict[str, Any]:
    """Log in (rate-limited per user name and per address)."""
    if not request.app.state.settings.accounts():
        raise APIError(400, "Accounts are off (CHATBOT_AUTH=none).", code="accounts_disabled")
    return {"user": (await auth.login(request, response, body.username, body.password)).view()}


@router.post("/auth/logout")
async def logout(request: Request, response: Response) -> dict[str, Any]:
    """End this login."""
    await auth.logout(request, response)
    return {"ok": True}


@router.get("/me")
async def me(user: UserDep, settings: SettingsDep) -> dict[str, Any]:
    """The logged-in user and what the page needs to start."""
    return {"user": user.view(), "accounts": settings.accounts(), "agent": settings.agent_name,
            "default_model": settings.default_model}
