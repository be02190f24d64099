"""The chat page in a real headless Chromium, at desktop and phone size: first-run admin,
login, chat, stop, the sidebar (rename, search, delete, export), regenerate, edit and resend,
copy, reload, a restart of the chatbot, a second user, and hostile text that stays inert."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from tests.chatbot.conftest import PASSWORD, chatbot_env
from tests.chatbot.fake_llm import fake_llm
from tests.utils.browser import CHROMIUM, require_browser
from tests.utils.procs import ServiceProcess

# Other modules import this one's fixtures and helpers for their own browser tests, so it
# imports without Playwright: only tests marked `browser` skip (tests/conftest.py).
pytestmark = [pytest.mark.slow, pytest.mark.browser]
VIEWPORTS = {"desktop": {"width": 1280, "height": 800}, "phone": {"width": 390, "height": 844}}
XSS_USER = ('<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> '
            '[click](javascript:window.__xss=3) Reply with one word.')
XSS_TITLE = '<img src=x onerror="window.__xss=11"> renamed'
XSS_MODEL = "\n\n".join([
    '<img src=x onerror="window.__xss=4">',
    '<script>window.__xss=5</script>',
    '[link](javascript:window.__xss=6)',
    '```html\n<script>window.__xss=7</script><b>bold</b>\n```',
    '<a href="javascript:window.__xss=8">x</a><svg onload="window.__xss=9"></svg>',
    '<iframe src="javascript:window.__xss=10"></iframe>',
])


def expect(*args, **kwargs):  # noqa: ANN002, ANN003, ANN201
    """Playwright's expect, imported at its first use."""
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(*args, **kwargs)


@pytest.fixture()
def chromium():  # noqa: ANN201
    require_browser()
    from playwright import sync_api

    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield browser
        browser.close()


def new_page(browser, viewport: str):  # noqa: ANN001, ANN201
    context = browser.new_context(viewport=VIEWPORTS[viewport], accept_downloads=True,
                                  permissions=["clipboard-read", "clipboard-write"])
    page = context.new_page()
    page.set_default_timeout(60_000)
    return page


def sidebar(page, phone: bool):  # noqa: ANN001, ANN201
    """The sidebar's entries (opening the drawer first on a phone)."""
    if phone and "sidebar-open" not in (page.get_attribute("body", "class") or ""):
        page.click("#toggle-sidebar")
    expect(page.locator("#sidebar")).to_be_visible()
    return page.locator("#conversations li a")


def send(page, text: str) -> None:  # noqa: ANN001
    page.wait_for_selector("body[data-ready]")
    page.fill("#input", text)
    page.press("#input", "Enter")
    expect(page.locator("#status")).to_have_text("ready", timeout=300_000)  # busy CI cores


def no_script_ran(page) -> None:  # noqa: ANN001
    assert page.evaluate("window.__xss") is None
    assert page.locator("body script:not([src])").count() == 0
    assert page.locator("[onerror], [onload], a[href^='javascript'], iframe").count() == 0


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_accounts_and_conversations_in_the_page(llm_server: ServiceProcess, chromium,  # noqa: ANN001
                                                viewport: str, artifacts_dir: Path) -> None:
    phone = viewport == "phone"
    env = chatbot_env(llm_server.url, CHATBOT_AUTH="accounts", CHATBOT_ANSWER_TOKENS="200")
    ui = ServiceProcess("chatbot", "CHATBOT_", env=env)
    with ui:
        page = new_page(chromium, viewport)
        outside: list[str] = []
        page.on("request", lambda r: outside.append(r.url)
                if not r.url.startswith(ui.url) else None)
        # First run: the first visitor creates the admin account.
        page.goto(ui.url + "/")
        expect(page).to_have_url(ui.url + "/login")
        expect(page.locator("#login-title")).to_have_text("Create the admin account")
        page.fill("#username", "admin")
        page.fill("#password", PASSWORD)
        page.click("#submit")
        expect(page.locator("#username")).to_have_text("admin")
        expect(page.locator("#agent")).to_have_text("Jarvis")
        page.wait_for_selector("body[data-ready]")
        assert "tinyllm_login" in [c["name"] for c in page.context.cookies()
                                   if c["httpOnly"]]

        # Stream, then Stop: the partial answer is kept and marked stopped.
        page.fill("#input", "Write a very long story about a dragon who learns to cook.")
        page.press("#input", "Enter")
        expect(page.locator("#status")).to_have_attribute("data-kind", "generating")
        answer = page.locator(".message.assistant .body").last
        expect(answer).to_have_text(re.compile(r"[\s\S]{30}"))
        page.click("#stop")
        expect(page.locator("#status")).to_have_text("stopped")
        expect(page.locator(".message.assistant .notice.status-stopped")).to_have_count(1)
        expect(sidebar(page, phone)).to_have_text([re.compile("^Write a very long story")])
        page.locator("#conversations li a").first.click()  # also closes the phone's drawer

        # Hostile text from the user, and a hostile title, show as text.
        send(page, XSS_USER)
        user_body = page.locator(".message.user .body").last
        assert "<img" in user_body.inner_text()
        assert user_body.locator("img, script, a").count() == 0
        page.once("dialog", lambda d: d.accept(XSS_TITLE))
        page.click("#rename")
        expect(page.locator("#conv-title")).to_have_text(XSS_TITLE)
        expect(sidebar(page, phone).first).to_have_text(XSS_TITLE)
        if phone:
            page.click("#toggle-sidebar")

        # A second conversation: newest first in the sidebar; search finds by words.
        page.click("#new-chat")
        expect(page.locator(".message")).to_have_count(0)
        reads: list[str] = []  # the page learns stored ids from the stream: no read-back
        page.on("request", lambda r: reads.append(r.url) if r.method == "GET" and re.search(
            r"/api/conversations/[0-9a-f]{32}$", r.url) else None)
        send(page, "Name three colours.")
        expect(sidebar(page, phone)).to_have_text(["Name three colours.", XSS_TITLE])
        assert reads == []
        assert page.locator(".message.user").get_attribute("data-id")
        page.fill("#search", "drag")
        expect(page.locator("#conversations li a")).to_have_text([XSS_TITLE])
        page.fill("#search", "")
        expect(page.locator("#conversations li a")).to_have_count(2)
        page.locator("#conversations li a").first.click()
        expect(page.locator(".message")).to_have_count(2)

        # Regenerate the last answer; edit the question and resend.
        page.click(".message.assistant .regenerate")
        expect(page.locator("#status")).to_have_text("ready", timeout=300_000)
        expect(page.locator(".message")).to_have_count(2)
        page.click(".message.user .edit")
        page.fill(".message.user .edit-box", "Name three fruits.")
        page.click(".message.user .save-edit")
        expect(page.locator("#status")).to_have_text("ready", timeout=300_000)
        expect(page.locator(".message")).to_have_count(2)
        expect(page.locator(".message.user .body")).to_have_text("Name three fruits.")
        # The title follows the first message (until the user renames the chat).
        expect(page.locator("#conv-title")).to_have_text("Name three fruits.")
        answer_text = page.locator(".message.assistant").last.get_attribute("data-text")
        assert answer_text
        page.locator(".message.assistant .copy").last.click()
        expect(page.locator("#status")).to_have_text("message copied")
        assert page.evaluate("navigator.clipboard.readText()") == answer_text

        # Export as Markdown and JSON.
        with page.expect_download() as info:
            page.click("#export-md")
        markdown = Path(info.value.path()).read_text()
        assert markdown.startswith("# Name three fruits.\n") and answer_text in markdown
        with page.expect_download() as info:
            page.click("#export-json")
        exported = json.loads(Path(info.value.path()).read_text())
        assert [m["content"] for m in exported["messages"]] == ["Name three fruits.",
                                                                answer_text]

        # Reload, then restart the chatbot: everything is still there.
        page.reload()
        expect(page.locator(".message")).to_have_count(2)
        ui.stop()
        ui.start()
        page.reload()
        expect(page.locator(".message.user .body")).to_have_text("Name three fruits.")
        expect(sidebar(page, phone)).to_have_count(2)
        page.locator("#conversations li a").nth(1).click()
        expect(page.locator(".message")).to_have_count(4)
        assert "<img" in page.locator(".message.user .body").last.inner_text()
        expect(page.locator(".message.assistant .notice.status-stopped")).to_have_count(1)
        page.screenshot(path=str(artifacts_dir / f"chatbot-ui-{viewport}.png"), full_page=True)

        # Delete one conversation.
        page.once("dialog", lambda d: d.accept())
        page.click("#delete")
        expect(sidebar(page, phone)).to_have_text(["Name three fruits."])
        page.locator("#conversations li a").first.click()
        expect(page.locator(".message")).to_have_count(2)

        # The admin adds a user, who sees none of the admin's chats.
        admin_chat = page.url.split("#")[-1]
        assert re.fullmatch(r"[0-9a-f]{32}", admin_chat)
        page.goto(ui.url + "/settings")
        page.fill("#new-username", "bob")
        page.fill("#new-password", PASSWORD)
        page.click("#new-user button")
        expect(page.locator("#users tr[data-username=bob] .state")).to_have_text("active")
        bob = new_page(chromium, viewport)
        # A submit before login.js has taken the form over would be the browser's own GET,
        # the password in the URL: the button stays disabled until then.
        bob_urls: list[str] = []
        bob.on("request", lambda r: bob_urls.append(r.url))
        bob.goto(ui.url + "/")
        expect(bob).to_have_url(ui.url + "/login")
        bob.fill("#username", "bob")
        bob.fill("#password", PASSWORD)
        bob.click("#submit")
        expect(bob.locator("#username")).to_have_text("bob")
        assert not [u for u in bob_urls if PASSWORD in u or "password=" in u]
        expect(sidebar(bob, phone)).to_have_count(0)
        expect(bob.locator("#conversations li.empty")).to_have_text("no chats yet")
        bob.fill("#search", "fruits")
        expect(bob.locator("#conversations li.empty")).to_have_text("no chat matches")
        bob.goto(ui.url + "/#" + admin_chat)  # a link to the admin's chat
        bob.wait_for_selector("body[data-ready]")
        expect(bob.locator("#conv-bar")).to_be_hidden()
        assert bob.locator(".message").count() == 0
        bob.click("#logout")
        expect(bob).to_have_url(ui.url + "/login")
        no_script_ran(page)
        assert outside == []  # everything, libraries included, came from the chatbot itself


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_hostile_model_answer_through_sse_and_history_stays_inert(chromium,  # noqa: ANN001
                                                                   viewport: str) -> None:
    with fake_llm(XSS_MODEL, delay_s=0.01) as llm, ServiceProcess(
            "chatbot", "CHATBOT_", env=chatbot_env(llm, CHATBOT_DEFAULT_MODEL="scripted")) as ui:
        page = new_page(chromium, viewport)
        page.goto(ui.url + "/")
        send(page, "Tell me something.")
        for where in ("streamed", "history"):
            body = page.locator(".message.assistant .body").last
            expect(body.locator("pre code")).to_have_count(1)
            assert "window.__xss=7" in body.locator("pre code").inner_text()
            assert body.locator("b").count() == 0 or "bold" not in body.locator("b").inner_text()
            page.wait_for_timeout(300)
            no_script_ran(page)
            if where == "streamed":
                page.reload()  # the same answer again, from the stored history
                expect(page.locator(".message")).to_have_count(2)
        page.locator(".message.assistant pre .copy-code").click()
        assert "<script>window.__xss=7</script><b>bold</b>" in \
            page.evaluate("navigator.clipboard.readText()")


def test_a_message_sent_while_a_chat_loads_goes_to_that_chat(chatbot: ServiceProcess,
                                                             chromium) -> None:  # noqa: ANN001
    """Click a chat and send before its history arrives: the turn waits for the history, is
    shown after it (not wiped by it) and is stored in the chat clicked."""
    page = new_page(chromium, "desktop")
    page.goto(chatbot.url + "/")
    send(page, "First chat: name a colour.")
    first = page.evaluate("location.hash.slice(1)")
    page.click("#new-chat")
    send(page, "Second chat: name a fruit.")
    held = []
    page.route(f"**/api/conversations/{first}", lambda route: held.append(route)
               if route.request.method == "GET" else route.continue_())
    page.locator(f"#conversations li[data-id='{first}'] a").click()
    page.fill("#input", "Still the first chat: name a shape.")
    page.press("#input", "Enter")
    page.wait_for_timeout(500)
    assert len(held) == 1
    assert page.locator(".message.user .body").last.inner_text() == "Second chat: name a fruit."
    held[0].continue_()
    expect(page.locator(".message.user .body")).to_have_text(
        ["First chat: name a colour.", "Still the first chat: name a shape."])
    expect(page.locator("#status")).to_have_text("ready", timeout=300_000)
    page.unroute(f"**/api/conversations/{first}")
    page.reload()
    expect(page.locator(".message.user .body")).to_have_text(
        ["First chat: name a colour.", "Still the first chat: name a shape."])
    expect(page.locator(".message")).to_have_count(4)
