"""The pages for everyone, in a real headless Chromium: axe-core (from npm, injected by the
test, never served) finds no critical or serious fault on the chat, documents, settings and
shared pages, at desktop and phone size, in light and dark; screenshots of each go to the
test artifacts."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.chatbot.conftest import PASSWORD, chatbot_env
from tests.chatbot.fake_llm import fake_llm
from tests.utils.procs import ServiceProcess

sync_api = pytest.importorskip("playwright.sync_api")
expect = sync_api.expect
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
        cookies = [{"name": k, "value": v, "url": ui.url} for k, v in client.cookies.items()]
        yield Site(ui.url, cookies, conversation)


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
             "settings": "/settings"}
    faults: dict[str, list[str]] = {}
    for name, path in pages.items():
        goto(page, site.url + path)
        if name == "chat":
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
