"""The pages for everyone, in a real headless Chromium: axe-core (from npm, injected by the
test, never served) finds no critical or serious fault on the chat, documents, settings,
shared and help pages, at desktop and phone size, in light and dark (screenshots of each go to
the test artifacts); dark mode; the phone layout; answer details from the stream's usage,
keyboard shortcuts, visible focus and the live region, against the real llmserver."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.chatbot.conftest import PASSWORD, chatbot_env
from tests.chatbot.fake_llm import fake_llm
from tests.utils.procs import ServiceProcess

try:
    from playwright import sync_api
    from playwright.sync_api import expect
except ImportError:  # the `browser` marker skips these tests then (and fails them under CI)
    sync_api = expect = None  # type: ignore[assignment]
else:
    expect.set_options(timeout=30_000)
pytestmark = [pytest.mark.slow, pytest.mark.browser]
CHROMIUM = Path("/usr/bin/chromium")
AXE = Path(__file__).resolve().parents[2] / "chatbot" / "node_modules" / "axe-core" / "axe.min.js"
SIZES = {"desktop": {"width": 1280, "height": 860}, "phone": {"width": 390, "height": 844}}
THEMES = ["light", "dark"]
ANSWER = ("Here is **one** way, with a [link](https://example.org):\n\n"
          "```python\nprint(len('turnips'))  # 7\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |")


@dataclass
class Site:
    url: str
    cookies: list[dict]
    conversation: str
    shared: str  # the path of a read-only link to the conversation


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    """A chatbot with accounts in front of a scripted model; the admin has one chat."""
    with fake_llm(ANSWER) as llm, ServiceProcess("chatbot", "CHATBOT_", env=chatbot_env(
            llm, CHATBOT_AUTH="accounts", CHATBOT_DEFAULT_MODEL="scripted")) as ui, \
            httpx.Client(base_url=ui.url, timeout=60) as client:
        r = client.post("/api/auth/setup", json={"username": "admin", "password": PASSWORD})
        assert r.status_code == 200, r.text
        with client.stream("POST", "/api/chat", json={"message": "How long is 'turnips'?"}) as r:
            assert r.status_code == 200
            r.read()
        conversation = client.get("/api/conversations").json()["data"][0]["id"]
        r = client.post(f"/api/conversations/{conversation}/shares", json={})
        assert r.status_code == 201, r.text
        cookies = [{"name": k, "value": v, "url": ui.url} for k, v in client.cookies.items()]
        yield Site(ui.url, cookies, conversation, r.json()["path"])


@pytest.fixture(scope="module")
def browser():  # noqa: ANN201
    """One Chromium for the module (a context per size and theme)."""
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed")
    if not AXE.is_file():
        pytest.fail("axe-core is missing: run 'npm ci' in chatbot/")
    with sync_api.sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        yield chromium
        chromium.close()


def open_page(browser, site: Site, size: str, theme: str):  # noqa: ANN001, ANN201
    context = browser.new_context(viewport=SIZES[size], color_scheme=theme)
    context.add_cookies(site.cookies)
    page = context.new_page()
    page.set_default_timeout(30_000)
    return page


def goto(page, url: str) -> None:  # noqa: ANN001
    page.goto(url)
    if not url.endswith("/help"):  # the one page without a script
        page.wait_for_selector("body[data-ready]")


def axe(page, rules: list[str] | None = None) -> list[dict]:  # noqa: ANN001
    """axe-core's violations on the page as it is (evaluated over CDP: the page's CSP, which
    allows no inline script, stays on)."""
    if not page.evaluate("typeof axe !== 'undefined'"):
        page.evaluate(AXE.read_text() + "\n;0")
    options: dict[str, object] = {"resultTypes": ["violations"]}
    if rules:
        options["runOnly"] = {"type": "rule", "values": rules}
    return page.evaluate("(o) => axe.run(document, o).then((r) => r.violations)", options)


def serious(violations: list[dict]) -> list[str]:
    return [f"{v['impact']} {v['id']}: {[n['target'] for n in v['nodes']][:4]}"
            for v in violations if v["impact"] in ("critical", "serious")]


@pytest.mark.parametrize("theme", THEMES)
@pytest.mark.parametrize("size", list(SIZES))
def test_pages_have_no_serious_accessibility_faults(site: Site, browser, size: str,  # noqa: ANN001
                                                    theme: str, artifacts_dir: Path) -> None:
    page = open_page(browser, site, size, theme)
    pages = {"chat": f"/#{site.conversation}", "documents": "/documents",
             "settings": "/settings", "shared": site.shared, "help": "/help"}
    faults: dict[str, list[str]] = {}
    for name, path in pages.items():
        goto(page, site.url + path)
        if name in ("chat", "shared"):
            expect(page.locator(".message")).to_have_count(2)
        found = serious(axe(page))
        if found:
            faults[name] = found
        width = page.evaluate("[document.scrollingElement.scrollWidth, innerWidth]")
        assert width[0] <= width[1], f"{name} scrolls sideways at {size}: {width}"
        page.screenshot(path=str(artifacts_dir / f"chatbot-{name}-{size}-{theme}.png"),
                        full_page=True)
    page.context.close()
    assert faults == {}


LUMINANCE = """(selector) => {
  const [r, g, b] = getComputedStyle(document.querySelector(selector)).backgroundColor
    .match(/[\\d.]+/g).slice(0, 3).map((c) => {
      const v = Number(c) / 255;
      return v <= 0.03928 ? v / 12.92 : ((v + 0.055) / 1.055) ** 2.4;
    });
  return 0.2126 * r + 0.7152 * g + 0.0722 * b;
}"""


def test_dark_mode_follows_the_system_and_a_remembered_toggle(site: Site, browser) -> None:  # noqa: ANN001
    page = open_page(browser, site, "desktop", "dark")
    goto(page, f"{site.url}/#{site.conversation}")
    expect(page.locator(".message pre code.hljs")).to_have_count(1)
    # WCAG relative luminance: the page and its code are dark, and every text contrasts.
    assert page.evaluate(LUMINANCE, "body") < 0.02
    assert page.evaluate(LUMINANCE, ".message pre code") < 0.05
    assert serious(axe(page, ["color-contrast"])) == []
    expect(page.locator("#theme-toggle")).to_have_attribute("aria-pressed", "true")
    # The toggle wins over the system's scheme, in this browser, across pages and reloads.
    page.click("#theme-toggle")
    expect(page.locator("#theme-toggle")).to_have_attribute("aria-pressed", "false")
    assert page.evaluate(LUMINANCE, "body") > 0.9
    goto(page, site.url + "/settings")
    assert page.evaluate(LUMINANCE, "body") > 0.9
    goto(page, f"{site.url}/#{site.conversation}")
    assert page.evaluate(LUMINANCE, ".message pre code") > 0.9
    assert serious(axe(page, ["color-contrast"])) == []
    page.click("#theme-toggle")
    assert page.evaluate(LUMINANCE, "body") < 0.02
    page.context.close()


def test_phone_layout_one_header_row_a_drawer_and_a_wide_message_box(
        site: Site, browser, artifacts_dir: Path) -> None:  # noqa: ANN001
    page = open_page(browser, site, "phone", "light")
    goto(page, f"{site.url}/#{site.conversation}")
    width = SIZES["phone"]["width"]
    assert page.locator("#input").bounding_box()["width"] >= 0.7 * width
    assert page.locator("header").bounding_box()["height"] <= 56  # one row
    # Icon buttons keep their names; Send and Stop share one place.
    for name in ("Menu", "New chat", "Log out", "Attach", "Send"):
        expect(page.get_by_role("button", name=name, exact=True)).to_be_visible()
    expect(page.get_by_role("button", name="Stop", exact=True)).to_be_hidden()
    # The pickers and page links are in the drawer, with the chats.
    expect(page.locator("#model")).to_be_hidden()
    page.get_by_role("button", name="Menu").click()
    drawer = page.locator("#sidebar")
    expect(page.locator("#toggle-sidebar")).to_have_attribute("aria-expanded", "true")
    for control in (drawer.get_by_label("Model"), drawer.get_by_label("Documents"),
                    drawer.get_by_role("link", name="Settings"),
                    drawer.get_by_role("link", name="Help"), drawer.locator("#conversations a")):
        expect(control).to_be_visible()
    assert drawer.bounding_box()["width"] <= width
    page.screenshot(path=str(artifacts_dir / "chatbot-chat-phone-menu.png"))
    page.keyboard.press("Escape")
    expect(drawer).to_be_hidden()
    # Wider than 640 px: today's desktop layout, the pickers back in the header.
    page.set_viewport_size(SIZES["desktop"])
    expect(page.locator("header #model")).to_be_visible()
    expect(drawer).to_be_visible()
    expect(page.get_by_role("button", name="Stop", exact=True)).to_be_disabled()
    page.context.close()


def test_answer_details_shortcuts_focus_and_live_region(llm_server: ServiceProcess,  # noqa: ANN001
                                                        browser) -> None:
    """Against the real llmserver: its stream's usage is what Details shows."""
    with ServiceProcess("chatbot", "CHATBOT_", env=chatbot_env(
            llm_server.url, CHATBOT_ANSWER_TOKENS="48")) as ui, \
            httpx.Client(base_url=ui.url, timeout=60) as api:
        context = browser.new_context(viewport=SIZES["desktop"],
                                      permissions=["clipboard-read", "clipboard-write"])
        page = context.new_page()
        page.set_default_timeout(120_000)  # two shared cores generate slowly under load
        goto(page, ui.url + "/")
        expect(page.locator(".empty-state")).to_contain_text("Type a message below")
        # The model picker says what llmserver's /v1/models says of each model.
        expect(page.locator("#model option:checked")).to_have_text(
            "smollm2-135m-instruct · 98 MB · Q4_1 · 2048 ctx")

        # Esc stops an answer while it streams; Ctrl+Shift+O starts a new chat.
        page.fill("#input", "Write a very long story about a dragon who learns to cook.")
        page.press("#input", "Enter")
        expect(page.locator(".message.assistant .body")).to_have_text(re.compile(r"\w+ \w+"))
        page.keyboard.press("Escape")
        expect(page.locator("#status")).to_have_text("stopped")
        page.keyboard.press("Control+Shift+O")
        expect(page.locator(".message")).to_have_count(0)
        expect(page.locator(".empty-state")).to_be_visible()
        expect(page.locator("#input")).to_be_focused()

        # A whole answer: announced once in the polite live region, with its details.
        page.fill("#input", "Say hello in one short sentence.")
        page.press("#input", "Enter")
        expect(page.locator("#status")).to_have_text("ready")
        answer = page.locator(".message.assistant").last
        text = answer.locator(".body").inner_text().strip()
        assert text
        announcer = page.locator("#announcer")
        assert announcer.get_attribute("aria-live") == "polite"
        expect(announcer).to_have_text(f"Jarvis: {text}")
        stored = api.get("/api/conversations").json()["data"][0]
        usage = api.get(f"/api/conversations/{stored['id']}").json()["messages"][-1]["meta"][
            "usage"]
        assert usage["model"] == "smollm2-135m-instruct"
        assert usage["completion_tokens"] > 0 and usage["prompt_tokens"] > 0
        assert usage["first_token_s"] > 0 and usage["sources"] == 0 and usage["link"] is None
        for where in ("streamed", "history"):
            details = answer.locator(".answer-details")
            expect(details.locator("dd").first).to_be_hidden()  # on demand only
            details.locator("summary").click()
            expect(details.locator("dd")).to_have_text([
                "smollm2-135m-instruct",
                f"{usage['completion_tokens']} in the answer, "
                f"{usage['prompt_tokens']} in the prompt",
                f"{usage['first_token_s']} s",
                re.compile(r"^(\d+(\.\d)? tokens/s|not reported)$"), "none", "none"])
            if where == "streamed":
                page.reload()
                page.wait_for_selector("body[data-ready]")
                answer = page.locator(".message.assistant").last

        # Copy the last answer, search chats, back to the box; focus is visible.
        page.keyboard.press("Control+Shift+C")
        expect(page.locator("#status")).to_have_text("answer copied")
        assert page.evaluate("navigator.clipboard.readText()") == text
        page.keyboard.press("Control+K")
        expect(page.locator("#search")).to_be_focused()
        page.keyboard.press("Shift+Escape")
        expect(page.locator("#input")).to_be_focused()
        page.keyboard.press("Shift+Tab")
        outline = page.evaluate("getComputedStyle(document.activeElement).outlineStyle")
        assert outline not in ("", "none"), outline

        # The shortcuts are documented under /help.
        goto(page, ui.url + "/help")
        for keys in ("Ctrl+Shift+O", "Shift+Esc", "Esc", "Ctrl+Shift+C", "Ctrl+K"):
            expect(page.locator("#shortcuts td").filter(
                has_text=re.compile("^" + re.escape(keys) + "$"))).to_have_count(1)
        context.close()
