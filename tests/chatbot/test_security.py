"""Attacks on the chatbot over HTTP, against a real process with accounts on: no login, CSRF,
DNS rebinding, anonymous floods, password guessing, another user's data, API keys."""

from __future__ import annotations

import concurrent.futures
import json
from collections.abc import Iterator

import httpx
import pytest

from chatbot.config import Settings
from chatbot.main import create_app
from tests.chatbot.conftest import PASSWORD, chat_events, chatbot_env, conversation_of, login
from tests.chatbot.fake_llm import fake_llm
from tests.utils.procs import ServiceProcess

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bot() -> Iterator[ServiceProcess]:
    with fake_llm("Hello there, I am a scripted answer.") as llm, ServiceProcess(
            "chatbot", "CHATBOT_", env=chatbot_env(
                llm, CHATBOT_AUTH="accounts", CHATBOT_LOGIN_ATTEMPTS="3",
                CHATBOT_API_KEY="service-key")) as proc:
        with httpx.Client(base_url=proc.url, timeout=30) as admin:
            login(admin, "admin", route="setup")
        yield proc


def api_routes() -> list[tuple[str, str]]:
    """Every /api route of the app but the login itself, with its method."""
    paths = create_app(Settings()).openapi()["paths"]
    return [(method.upper(), path.replace("{", "").replace("}", ""))
            for path, methods in paths.items() for method in methods
            if path.startswith("/api/") and not path.startswith("/api/auth/")]


def test_every_api_route_needs_a_login(bot: ServiceProcess) -> None:
    routes = api_routes()
    assert len(routes) >= 20 and ("POST", "/api/chat") in routes
    assert ("POST", "/api/collections") in routes  # the documents proxy too
    for method, path in routes:
        if method == "POST" and path.endswith("/documents"):  # the upload: multipart
            kw: dict = {"files": {"files": ("a.txt", b"x", "text/plain")}}
        elif method == "POST" and path == "/api/attachments":  # a file for a chat: multipart
            kw = {"files": {"file": ("a.txt", b"x", "text/plain")}}
        else:
            kw = {"json": {}} if method != "GET" else {}
        r = httpx.request(method, bot.url + path, timeout=30, **kw)
        assert r.status_code == 401, (method, path, r.status_code, r.text)
        assert r.json()["error"]["code"] == "login_required"
    bad_cookie = httpx.get(bot.url + "/api/conversations", cookies={"tinyllm_login": "forged"})
    assert bad_cookie.status_code == 401


def test_cross_site_requests_are_refused(bot: ServiceProcess) -> None:
    with httpx.Client(base_url=bot.url, timeout=30) as client:
        login(client, "admin")
        # The classic CSRF: a form posting text/plain "JSON" (no preflight).
        r = client.post("/api/collections", content=b'{"name": "pwned"}',
                        headers={"content-type": "text/plain"})
        assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
        r = client.post("/api/chat", content=b'{"message": "hi"}',
                        headers={"content-type": "text/plain", "origin": "https://evil.example",
                                 "sec-fetch-site": "cross-site"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "cross_site_request"
        # A cross-origin multipart upload (a form with enctype multipart/form-data).
        r = client.post("/api/collections/notes/documents",
                        files={"files": ("a.txt", b"x", "text/plain")},
                        headers={"origin": "https://evil.example"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "cross_site_request"
        r = client.post("/api/auth/logout", headers={"sec-fetch-site": "cross-site"})
        assert r.status_code == 403
        assert client.get("/api/me").status_code == 200  # still logged in
        # The page itself (same origin) works.
        r = client.patch("/api/admin/settings", json={"allow_signup": False},
                         headers={"origin": bot.url, "sec-fetch-site": "same-origin"})
        assert r.status_code == 200


def test_dns_rebinding_host_is_refused(bot: ServiceProcess) -> None:
    for path in ("/", "/api/auth/state", "/v1/models"):
        r = httpx.get(bot.url + path, headers={"host": "attacker.example:5000"}, timeout=30)
        assert r.status_code == 400 and r.json()["error"]["code"] == "host_not_allowed"
    assert httpx.get(bot.url + "/", headers={"host": "localhost"}, timeout=30).status_code == 200


def test_anonymous_gets_create_nothing_and_nobody_is_locked_out(bot: ServiceProcess) -> None:
    # One pooled client for the flood: a client per request spent most of this test's 30 s
    # building TLS contexts in the test process, not in the chatbot.
    with httpx.Client(timeout=60, limits=httpx.Limits(max_connections=8)) as flood, \
            concurrent.futures.ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(
            lambda _: flood.get(bot.url + "/api/conversations").status_code, range(2000)))
    assert set(statuses) == {401}
    with httpx.Client(base_url=bot.url, timeout=30) as client:
        assert client.get("/").status_code == 200 and not client.cookies
        assert client.get("/api/auth/state").json()["setup_needed"] is False
        login(client, "admin")
        assert client.get("/api/conversations").status_code == 200


def test_login_rate_limit_and_health_says_only_ok(bot: ServiceProcess) -> None:
    with httpx.Client(base_url=bot.url, timeout=30) as admin:
        login(admin, "admin")
        r = admin.post("/api/admin/users", json={"username": "victim", "password": PASSWORD})
        assert r.status_code == 201
    for _ in range(3):
        r = httpx.post(bot.url + "/api/auth/login",
                       json={"username": "victim", "password": "wrong password"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_login"
    r = httpx.post(bot.url + "/api/auth/login", json={"username": "victim", "password": PASSWORD})
    assert r.status_code == 429 and r.json()["error"]["code"] == "too_many_logins"
    assert int(r.headers["retry-after"]) > 0
    health = httpx.get(bot.url + "/health")
    assert health.status_code == 200 and health.json() == {"status": "ok"}


def test_users_see_only_their_own_and_admin_controls_accounts(bot: ServiceProcess) -> None:
    with httpx.Client(base_url=bot.url, timeout=30) as admin, \
            httpx.Client(base_url=bot.url, timeout=30) as carol:
        login(admin, "admin")
        assert admin.post("/api/admin/users", json={
            "username": "carol", "password": PASSWORD}).status_code == 201
        cid = conversation_of(chat_events(admin, "my secret <b>plans</b>"))
        login(carol, "carol")
        assert carol.get("/api/conversations").json()["data"] == []
        assert carol.get("/api/conversations?q=secret").json()["data"] == []
        for method in ("GET", "DELETE"):
            r = carol.request(method, f"/api/conversations/{cid}")
            assert r.status_code == 404 and r.json()["error"]["code"] == "conversation_not_found"
        r = carol.get(f"/api/conversations/{cid}/export?format=json")
        assert r.status_code == 404
        r = carol.post("/api/chat", json={"conversation_id": cid, "message": "hijack"})
        assert r.status_code == 404
        r = carol.get("/api/admin/users")
        assert r.status_code == 403 and r.json()["error"]["code"] == "admin_only"
        assert carol.post("/api/auth/signup", json={
            "username": "mallory", "password": PASSWORD}).status_code == 403
        # The admin disables carol: her login stops working at once.
        carol_id = next(u["id"] for u in admin.get("/api/admin/users").json()["data"]
                        if u["username"] == "carol")
        assert admin.patch(f"/api/admin/users/{carol_id}", json={"disabled": True}).json()[
            "disabled"] is True
        assert carol.get("/api/conversations").status_code == 401
        r = httpx.post(bot.url + "/api/auth/login", json={"username": "carol",
                                                          "password": PASSWORD})
        assert r.status_code == 401
        assert admin.delete(f"/api/admin/users/{carol_id}").status_code == 200
        r = admin.delete(f"/api/admin/users/{carol_id}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "user_not_found"
        me = admin.get("/api/me").json()["user"]["id"]
        assert admin.delete(f"/api/admin/users/{me}").json()["error"]["code"] == "self_lockout"
        # Sign-up, once the admin allows it.
        admin.patch("/api/admin/settings", json={"allow_signup": True})
        with httpx.Client(base_url=bot.url, timeout=30) as dave:
            login(dave, "dave", route="signup")
            assert dave.get("/api/me").json()["user"]["is_admin"] is False
        admin.patch("/api/admin/settings", json={"allow_signup": False})
        r = admin.post("/api/auth/setup", json={"username": "again", "password": PASSWORD})
        assert r.status_code == 409 and r.json()["error"]["code"] == "setup_done"
        assert admin.post("/api/auth/logout").status_code == 200
        assert admin.get("/api/me").status_code == 401


def test_personal_and_service_keys_on_the_openai_endpoint(bot: ServiceProcess) -> None:
    body = {"messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    assert httpx.post(bot.url + "/v1/chat/completions", json=body).status_code == 401
    with httpx.Client(base_url=bot.url, timeout=30) as client:
        login(client, "admin")
        key = client.post("/api/keys", json={"name": "laptop"}).json()
        assert key["key"].startswith("tk-")
        listed = client.get("/api/keys").json()["data"]
        assert [k["name"] for k in listed] == ["laptop"] and "key" not in listed[0]
        for token in (key["key"], "service-key"):
            r = httpx.post(bot.url + "/v1/chat/completions", json=body,
                           headers={"authorization": f"Bearer {token}"})
            assert r.status_code == 200, r.text
            assert r.json()["choices"][0]["message"]["content"] == \
                "Hello there, I am a scripted answer."
        # curl -d convenience stays on the bearer-key routes: its form type, read as JSON
        # (tests/chatbot/test_completions.py does the same on /v1/completions).
        form = {"content-type": "application/x-www-form-urlencoded"}
        r = httpx.post(bot.url + "/v1/chat/completions", content=json.dumps(body),
                       headers={**form, "authorization": "Bearer service-key"})
        assert r.status_code == 200, r.text
        assert r.json()["choices"][0]["message"]["content"] == \
            "Hello there, I am a scripted answer."
        r = httpx.post(bot.url + "/v1/chat/completions", content=json.dumps(body), headers=form)
        assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
        assert client.delete(f"/api/keys/{key['id']}").status_code == 200
        r = httpx.post(bot.url + "/v1/chat/completions", json=body,
                       headers={"authorization": f"Bearer {key['key']}"})
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
