"""Editable prompts: placeholder checks, the admin API (stored in the database, used from the
next turn, reset), non-admins refused, a bad stored text never breaks a turn, and the
settings page in a real Chromium."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

import httpx
import pytest

from chatbot import templates
from chatbot.config import Settings
from chatbot.store import prompts as repo
from chatbot.store.db import Database
from services.errors import APIError
from tests.chatbot.conftest import PASSWORD, chat_events, chatbot_env, login
from tests.chatbot.fake_llm import fake_llm
from tests.chatbot.test_browser import VIEWPORTS, chromium, new_page  # noqa: F401
from tests.utils.procs import ServiceProcess

CUSTOM = "You are {agentname}, keeper of the word kumquat. It is {date}, {time}. Literal {{x}}."


@pytest.mark.parametrize("text", ["Hi {name}", "{date:%Y}", "{agentname!r}", "{0}", "{}",
                                  "open { brace", "close } brace", "{url}", "{agentname.x}"])
def test_bad_placeholders_are_refused_with_a_clear_message(text: str) -> None:
    with pytest.raises(APIError) as err:
        templates.check("system", text)
    assert err.value.status == 400 and err.value.code == "bad_placeholder"
    assert "{agentname}, {date}, {time}" in err.value.message


def test_good_prompts_expand_per_turn() -> None:
    settings = Settings(agent_name="Ada", timezone="UTC")
    out = templates.render("system", {"system": CUSTOM}, settings)
    now = datetime.utcnow()
    assert out.startswith("You are Ada, keeper of the word kumquat. It is ")
    assert f"{now:%B} {now.day}, {now.year}" in out and out.endswith("Literal {x}.")
    assert re.search(r"\d\d:\d\d UTC", out)
    link = templates.render("link", {"link": "Summarize {url} for {agentname}."}, settings,
                            url="https://example.org/a")
    assert link == "Summarize https://example.org/a for Ada."
    # A bad text that got into the database anyway: the default, not a crash.
    fallback = templates.render("system", {"system": "Hi {name}"}, settings)
    assert fallback.startswith("You are Ada, a helpful and concise assistant.")
    with pytest.raises(APIError) as err:
        templates.check("nope", "x")
    assert err.value.status == 404


def test_prompts_table_comes_from_a_migration(db_url: str) -> None:
    db = Database(db_url)
    db.migrate()
    db.call(lambda s: repo.save(s, "system", "A {date}", "admin"))
    db.call(lambda s: repo.save(s, "system", "B {date}", "admin"))
    assert db.call(repo.edited) == {"system": "B {date}"}
    db.call(lambda s: repo.reset(s, "system"))
    assert db.call(repo.edited) == {}
    db.close()


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[ServiceProcess, dict]]:
    stats: dict = {}
    with fake_llm("Scripted.", stats=stats) as llm, ServiceProcess(
            "chatbot", "CHATBOT_", env=chatbot_env(
            llm, CHATBOT_AUTH="accounts", CHATBOT_ADMIN_USER="admin",
            CHATBOT_ADMIN_PASSWORD=PASSWORD, CHATBOT_AGENT_NAME="Ada")) as bot:
        yield bot, stats


def system_sent(stats: dict) -> str:
    return stats["requests"][-1]["messages"][0]["content"]


def test_admin_edits_and_resets_the_system_prompt(scripted) -> None:  # noqa: ANN001
    bot, stats = scripted
    with httpx.Client(base_url=bot.url, timeout=60) as admin, \
            httpx.Client(base_url=bot.url, timeout=60) as dave:
        login(admin, "admin")
        listed = admin.get("/api/admin/prompts").json()["data"]
        assert [p["name"] for p in listed] == ["system", "documents", "link"]
        assert all(not p["edited"] and p["text"] == p["default"] for p in listed)
        assert listed[2]["placeholders"] == ["{agentname}", "{date}", "{time}", "{url}"]
        chat_events(admin, "Hello")
        assert system_sent(stats).startswith("You are Ada, a helpful and concise assistant.")

        r = admin.put("/api/admin/prompts/system", json={"text": CUSTOM})
        assert r.status_code == 200 and r.json()["edited"] and r.json()["text"] == CUSTOM
        chat_events(admin, "Hello again")
        sent = system_sent(stats)
        assert sent.startswith("You are Ada, keeper of the word kumquat. It is ")
        assert "{date}" not in sent and sent.endswith("Literal {x}.")

        bad = admin.put("/api/admin/prompts/system", json={"text": "Hello {user}"})
        assert bad.status_code == 400
        assert bad.json()["error"]["code"] == "bad_placeholder"
        assert bad.json()["error"]["param"] == "text"
        assert "Unknown placeholder {user}" in bad.json()["error"]["message"]
        assert admin.get("/api/admin/prompts").json()["data"][0]["text"] == CUSTOM  # unchanged
        r = admin.put("/api/admin/prompts/other", json={"text": "x"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "prompt_not_found"
        r = admin.put("/api/admin/prompts/system", json={"text": "x" * 9000})
        assert r.status_code == 400 and r.json()["error"]["code"] == "prompt_too_long"

        assert admin.post("/api/admin/users", json={
            "username": "dave", "password": PASSWORD}).status_code == 201
        login(dave, "dave")
        for method in ("GET", "PUT", "DELETE"):
            r = dave.request(method, "/api/admin/prompts" + ("/system" if method != "GET"
                                                             else ""), json={"text": "mine"})
            assert r.status_code == 403 and r.json()["error"]["code"] == "admin_only"

        r = admin.delete("/api/admin/prompts/system")
        assert r.status_code == 200 and not r.json()["edited"]
        chat_events(admin, "Hello once more")
        assert system_sent(stats).startswith("You are Ada, a helpful and concise assistant.")


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_settings_page_edits_prompts(
        scripted, chromium, viewport: str) -> None:  # noqa: ANN001, F811
    from playwright.sync_api import expect
    bot, stats = scripted
    page = new_page(chromium, viewport)
    page.goto(bot.url + "/login")
    page.fill("#username", "admin")
    page.fill("#password", PASSWORD)
    page.click("#submit")
    page.wait_for_url(bot.url + "/")
    page.goto(bot.url + "/settings")
    form = page.locator("form.prompt[data-name=system]")
    expect(form.locator("h3")).to_have_text("System prompt (default)")
    expect(form.locator(".placeholders")).to_have_text("Placeholders: {agentname} {date} {time}")
    form.locator("textarea").fill("Broken {nope}")
    form.locator("button.save").click()
    expect(page.locator("#status")).to_contain_text("Unknown placeholder {nope}")
    expect(page.locator("#status")).to_have_class(re.compile("error"))
    form.locator("textarea").fill("You are {agentname}, fond of kiwis.")
    form.locator("button.save").click()
    expect(page.locator("#status")).to_have_text("System prompt saved")
    expect(form.locator("h3")).to_have_text("System prompt (edited)")
    page.reload()
    expect(page.locator("form.prompt[data-name=system] textarea")).to_have_value(
        "You are {agentname}, fond of kiwis.")
    page.locator("form.prompt[data-name=system] button.reset").click()
    expect(page.locator("form.prompt[data-name=system] h3")).to_have_text(
        "System prompt (default)")
    assert page.locator("form.prompt[data-name=system] textarea").input_value().startswith(
        "You are {agentname}, a helpful and concise assistant.")
