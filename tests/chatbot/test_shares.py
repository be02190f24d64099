"""Read-only share links of a conversation: they open without a login and show only the
questions and answers, stop working once revoked (or with the conversation), can be revoked
by their owner alone, keep only the token's SHA-256, and keep hostile text inert in a real
Chromium."""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from chatbot.api.routes.shares import public_message
from chatbot.store.models import Message
from tests.chatbot.conftest import PASSWORD, chat_events, chatbot_env, conversation_of, login
from tests.chatbot.fake_llm import fake_llm
from tests.chatbot.test_browser import CHROMIUM, XSS_MODEL, no_script_ran
from tests.utils.procs import ServiceProcess

HOSTILE_QUESTION = '<img src=x onerror="window.__xss=1"> What is in the file?'
SECRET_FILE = "The vault code is 4711-turnip."


@dataclass
class Bot:
    url: str
    db: Path


@pytest.fixture(scope="module")
def bot() -> Iterator[Bot]:
    """A chatbot with accounts whose model answers with hostile markup; users admin and bob."""
    env = chatbot_env("", CHATBOT_AUTH="accounts", CHATBOT_DEFAULT_MODEL="scripted")
    with fake_llm(XSS_MODEL) as llm, ServiceProcess(
            "chatbot", "CHATBOT_", env={**env, "CHATBOT_LLM_URLS": llm + "/v1"}) as proc:
        with httpx.Client(base_url=proc.url, timeout=60) as admin:
            login(admin, "admin", route="setup")
            r = admin.post("/api/admin/users", json={"username": "bob", "password": PASSWORD})
            assert r.status_code in (200, 201), r.text
        yield Bot(proc.url, Path(env["CHATBOT_DATABASE_URL"].removeprefix("sqlite:///")))


@contextmanager
def user(bot: Bot, name: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=bot.url, timeout=60) as client:
        login(client, name)
        yield client


def shared_chat(client: httpx.Client) -> tuple[str, dict]:
    """A chat with a hostile question, an attached file and a hostile answer, and its link."""
    cid = conversation_of(chat_events(client, HOSTILE_QUESTION))
    r = client.post("/api/attachments", data={"conversation_id": cid},
                    files={"file": ("vault.txt", SECRET_FILE.encode(), "text/plain")})
    assert r.status_code in (200, 201), r.text
    r = client.post(f"/api/conversations/{cid}/shares", json={})
    assert r.status_code == 201, r.text
    return cid, r.json()


def test_link_reads_without_login_until_revoked_and_keeps_only_a_hash(bot: Bot) -> None:
    with user(bot, "admin") as admin, httpx.Client(base_url=bot.url, timeout=60) as anyone:
        cid, share = shared_chat(admin)
        token = share["path"].removeprefix("/s/")
        assert len(token) >= 40 and share["url"].endswith(share["path"])
        r = anyone.get(share["path"] + "/data")
        assert r.status_code == 200, r.text
        shown = r.json()
        assert [m["role"] for m in shown["messages"]] == ["user", "assistant"]
        assert shown["messages"][0]["content"] == HOSTILE_QUESTION
        assert shown["agent"] == "Jarvis"
        assert SECRET_FILE not in r.text and "vault.txt" not in r.text  # no attached file
        page = anyone.get(share["path"])
        assert page.status_code == 200 and "text/html" in page.headers["content-type"]
        # Listed for its owner (the link itself is never shown again).
        listed = admin.get("/api/shares").json()["data"]
        assert [(s["id"], s["conversation_id"]) for s in listed] == [(share["id"], cid)]
        assert token not in admin.get("/api/shares").text
        # The database holds the token's SHA-256, never the token.
        with sqlite3.connect(bot.db) as db:
            rows = db.execute("SELECT token_hash FROM conversation_shares").fetchall()
        assert (hashlib.sha256(token.encode()).hexdigest(),) in rows
        for path in bot.db.parent.glob(bot.db.name + "*"):  # the database and its WAL
            assert token.encode() not in path.read_bytes()
        # Revoked: the link is dead at once, page and data.
        r = admin.delete(f"/api/shares/{share['id']}")
        assert r.status_code == 200, r.text
        r = anyone.get(share["path"] + "/data")
        assert r.status_code == 404 and r.json()["error"]["code"] == "share_not_found"
        assert anyone.get(share["path"]).status_code == 404
        assert admin.get("/api/shares").json()["data"] == []
        # A wrong token, and a link whose chat was deleted, are 404 too.
        assert anyone.get("/s/" + token[:-2] + "xx/data").status_code == 404
        _, second = shared_chat(admin)
        assert anyone.get(second["path"] + "/data").status_code == 200
        assert admin.delete(f"/api/conversations/{second['conversation_id']}").status_code == 200
        assert anyone.get(second["path"] + "/data").status_code == 404


def test_only_the_owner_shares_and_revokes(bot: Bot) -> None:
    with user(bot, "admin") as admin, user(bot, "bob") as bob, \
            httpx.Client(base_url=bot.url, timeout=60) as anyone:
        cid, share = shared_chat(admin)
        r = bob.delete(f"/api/shares/{share['id']}")
        assert r.status_code == 404 and r.json()["error"]["code"] == "share_not_found"
        r = bob.post(f"/api/conversations/{cid}/shares", json={})
        assert r.status_code == 404 and r.json()["error"]["code"] == "conversation_not_found"
        assert bob.get("/api/shares").json()["data"] == []
        assert anyone.get(share["path"] + "/data").status_code == 200  # still live
        # No login: no sharing, no list, no revoking.
        assert anyone.post(f"/api/conversations/{cid}/shares", json={}).status_code == 401
        assert anyone.delete(f"/api/shares/{share['id']}").status_code == 401
        # Cross-site writes with the owner's cookie are refused, as on every route.
        for headers in ({"Origin": "http://evil.example"}, {"Sec-Fetch-Site": "cross-site"}):
            r = admin.post(f"/api/conversations/{cid}/shares", json={}, headers=headers)
            assert r.status_code == 403 and r.json()["error"]["code"] == "cross_site_request"
            r = admin.delete(f"/api/shares/{share['id']}", headers=headers)
            assert r.status_code == 403
        r = admin.post(f"/api/conversations/{cid}/shares", content=b"{}",
                       headers={"Content-Type": "text/plain"})
        assert r.status_code == 415
        assert anyone.get(share["path"] + "/data").status_code == 200


def test_private_sources_never_reach_a_link() -> None:
    m = Message(role="assistant", content="See [1] and [2].", status="complete", sources=[
        {"n": 1, "document": "vault.txt", "collection": "conv-" + "a" * 32, "page": None,
         "snippet": SECRET_FILE},
        {"n": 2, "document": "handbook.pdf", "collection": "notes", "page": 3,
         "snippet": "a snippet of the collection"}])
    assert public_message(m)["sources"] == [{"n": 2, "document": "handbook.pdf", "page": 3}]


@pytest.mark.browser
def test_shared_page_is_read_only_and_hostile_text_stays_inert(bot: Bot) -> None:
    from playwright import sync_api  # the `browser` marker skips (or fails, under CI) first
    from playwright.sync_api import expect
    with user(bot, "admin") as admin:
        for old in admin.get("/api/shares").json()["data"]:  # the other tests' links
            assert admin.delete(f"/api/shares/{old['id']}").status_code == 200
        cid = conversation_of(chat_events(admin, HOSTILE_QUESTION))
        cookies = [{"name": k, "value": v, "url": bot.url} for k, v in admin.cookies.items()]
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        # The owner shares the chat from its bar and copies the link.
        owner = browser.new_context(permissions=["clipboard-read", "clipboard-write"])
        owner.add_cookies(cookies)
        mine = owner.new_page()
        mine.set_default_timeout(30_000)
        mine.goto(f"{bot.url}/#{cid}")
        mine.wait_for_selector("body[data-ready]")
        mine.get_by_role("button", name="Share").click()
        expect(mine.locator("#share-panel")).to_be_visible()
        link = mine.locator("#share-url").input_value()
        assert link.startswith(bot.url + "/s/")
        mine.get_by_role("button", name="Copy link").click()
        assert mine.evaluate("navigator.clipboard.readText()") == link

        page = browser.new_page()  # another browser session: nobody is logged in
        page.set_default_timeout(30_000)
        response = page.goto(link)
        assert response is not None and response.status == 200
        page.wait_for_selector("body[data-ready]")
        expect(page).to_have_url(link)  # not sent to the login page
        expect(page.locator(".message")).to_have_count(2)
        expect(page.locator("#status")).to_have_text("read-only")
        assert page.locator("textarea, input, select, form, [contenteditable]").count() == 0
        question = page.locator(".message.user .body")
        expect(question).to_have_text(HOSTILE_QUESTION)
        assert question.locator("img").count() == 0
        expect(page.locator(".message.assistant pre code")).to_contain_text("window.__xss=7")
        page.wait_for_timeout(300)
        no_script_ran(page)

        # Listed in the owner's settings, revoked there: the link is dead.
        mine.goto(bot.url + "/settings")
        row = mine.locator("#share-list tbody tr")
        expect(row).to_have_count(1)
        expect(row.locator("td.name")).to_have_text(HOSTILE_QUESTION[:80].strip())
        row.get_by_role("button", name="Revoke").click()
        expect(mine.locator("#no-shares")).to_be_visible()
        expect(row).to_have_count(0)
        response = page.reload()
        assert response is not None and response.status == 404
        page.wait_for_selector("body[data-ready]")
        expect(page.locator("#shared-title")).to_have_text("Shared chat not found")
        expect(page.locator("#status")).to_contain_text("revoked")
        expect(page.locator(".message")).to_have_count(0)
        browser.close()
