"""The chat page in a real headless Chromium: stream, stop, new chat, reload, XSS inert."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.chatbot.conftest import chatbot_env
from tests.utils.procs import ServiceProcess

expect = pytest.importorskip("playwright.sync_api").expect
expect.set_options(timeout=60_000)  # 2 shared cores: generous, the test still ends on success
pytestmark = [pytest.mark.slow, pytest.mark.browser]
CHROMIUM = Path("/usr/bin/chromium")
XSS_USER = ('<img src=x onerror="window.__xss=1"><script>window.__xss=2</script> '
            '[click](javascript:window.__xss=3) what is this?')
XSS_MODEL = [
    '<img src=x onerror="window.__xss=4">',
    '<script>window.__xss=5</script>',
    '[link](javascript:window.__xss=6)',
    '```html\n<script>window.__xss=7</script><b>bold</b>\n```',
    '<a href="javascript:window.__xss=8">x</a><svg onload="window.__xss=9"></svg>',
    '<iframe src="javascript:window.__xss=10"></iframe>',
]


@pytest.fixture(scope="module")
def ui(llm_server: ServiceProcess) -> Iterator[ServiceProcess]:
    env = chatbot_env(llm_server.url, CHATBOT_ANSWER_TOKENS="300", CHATBOT_TEMPERATURE="0.7")
    with ServiceProcess("chatbot", "CHATBOT_", env=env) as proc:
        yield proc


@pytest.fixture()
def page(ui: ServiceProcess):  # noqa: ANN201
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page()
        page.set_default_timeout(60_000)
        yield page
        browser.close()


def assistant_texts(page) -> list[str]:  # noqa: ANN001
    return page.locator(".message.assistant .body").all_inner_texts()


def test_chat_page_end_to_end(ui: ServiceProcess, page, artifacts_dir: Path) -> None:  # noqa: ANN001
    blocked: list[str] = []
    page.on("request", lambda r: blocked.append(r.url) if not r.url.startswith(ui.url) else None)
    page.goto(ui.url + "/")
    expect(page.locator("#agent")).to_have_text("Jarvis")
    expect(page.locator("#model option").first).to_be_attached()

    # Streamed text appears while generating, then Stop ends it.
    page.fill("#input", "Write a very long story about a dragon who learns to cook.")
    page.press("#input", "Enter")
    expect(page.locator("#status")).to_have_attribute("data-kind", "generating")
    answer = page.locator(".message.assistant .body").last
    expect(answer).to_have_text(re.compile(r"\w{3}"))
    first = len(answer.inner_text())
    expect(answer).to_have_text(re.compile(rf"[\s\S]{{{first + 10}}}"))
    page.click("#stop")
    expect(page.locator("#status")).to_have_text("stopped")
    stopped_len = len(assistant_texts(page)[-1])
    page.wait_for_timeout(500)
    assert len(assistant_texts(page)[-1]) == stopped_len  # nothing arrives after Stop
    assert page.locator(".message.assistant .notice").first.inner_text() == "stopped"

    # The user's hostile text shows as text; nothing runs.
    page.fill("#input", XSS_USER)
    page.press("#input", "Enter")
    expect(page.locator("#status")).to_have_text("ready", timeout=180_000)  # busy CI cores
    user_body = page.locator(".message.user .body").last
    assert "<img" in user_body.inner_text() and user_body.locator("img, script, a").count() == 0

    # A hostile model answer goes through the same renderer as every answer.
    for payload in XSS_MODEL:
        page.evaluate("(text) => { const d = document.createElement('div'); "
                      "document.body.appendChild(d); renderMarkdown(d, text); }", payload)
    page.wait_for_timeout(300)
    assert page.evaluate("window.__xss") is None
    assert page.locator("body script:not([src])").count() == 0
    assert page.locator("[onerror], [onload], a[href^='javascript'], iframe").count() == 0
    assert page.locator("pre code").count() >= 1

    # Reload keeps the conversation (session cookie); New chat clears it.
    page.reload()
    expect(page.locator(".message")).to_have_count(4)
    assert "<img" in page.locator(".message.user .body").last.inner_text()
    page.screenshot(path=str(artifacts_dir / "chatbot-ui.png"), full_page=True)
    page.click("#new-chat")
    expect(page.locator(".message")).to_have_count(0)
    page.reload()
    expect(page.locator("#agent")).to_have_text("Jarvis")
    assert page.locator(".message").count() == 0
    assert page.evaluate("window.__xss") is None
    assert blocked == []  # everything, libraries included, came from the chatbot itself
