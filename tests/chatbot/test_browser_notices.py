"""What the page says about the model's side, in a real Chromium at desktop and phone size,
through the real SSE path: the trimmed-history notice (while the answer streams, once it
is stored, after a reload) and a second chat's place in the queue while the model is busy."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.chatbot.conftest import chat_events, chatbot_env, conversation_of
from tests.chatbot.test_browser import VIEWPORTS, chromium, expect, new_page  # noqa: F401
from tests.utils.procs import ServiceProcess

pytestmark = [pytest.mark.slow, pytest.mark.browser]
LONG = "The quick brown fox jumps over the lazy dog. " * 15  # about 150 tokens
TRIMMED = re.compile(r"^\d+ earlier message\(s\) no longer fit the model's context")


@pytest.fixture(scope="module")
def short_answers(models_dir: Path) -> Iterator[ServiceProcess]:
    """A chatbot in front of an llmserver with a small context (512 tokens): a few short
    turns fill it, so the page's trimmed turn costs seconds, not minutes, of prompt."""
    with ServiceProcess("llmserver", "LLMSERVER_", env={
            "LLMSERVER_MODELS_DIR": str(models_dir), "LLMSERVER_PARALLEL": "1",
            "LLMSERVER_QUEUE_SIZE": "4", "LLMSERVER_N_CTX": "512"}) as llm, \
            ServiceProcess("chatbot", "CHATBOT_", env=chatbot_env(
                llm.url, CHATBOT_ANSWER_TOKENS="16")) as proc:
        yield proc


@pytest.fixture(scope="module")
def long_answers(llm_server: ServiceProcess) -> Iterator[ServiceProcess]:
    """One generation at a time (the default per llmserver URL), long answers, no loop
    guard: a long answer keeps the model busy until it is stopped."""
    with ServiceProcess("chatbot", "CHATBOT_", env=chatbot_env(
            llm_server.url, CHATBOT_ANSWER_TOKENS="1500", CHATBOT_LOOP_REPEATS="0",
            CHATBOT_LLM_CONCURRENCY="1")) as proc:
        yield proc


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_trimmed_history_notice_in_the_page(short_answers: ServiceProcess, chromium,  # noqa: ANN001, F811
                                            viewport: str) -> None:
    # Two turns first (about 150 tokens each, over the API); the third, in the page, no
    # longer fits the model's 512 tokens whole.
    with httpx.Client(base_url=short_answers.url, timeout=300) as client:
        cid = None
        for i in range(2):
            events = chat_events(client, f"Part {i}: {LONG} Reply with OK.", conversation_id=cid)
            cid = conversation_of(events)
            assert not [d for n, d in events if n == "notice"], "trimmed too early"
    page = new_page(chromium, viewport)
    page.goto(f"{short_answers.url}/#{cid}")
    page.wait_for_selector("body[data-ready]")
    expect(page.locator(".message")).to_have_count(4)
    expect(page.locator(".notice.history_trimmed")).to_have_count(0)
    page.fill("#input", f"Part 2: {LONG} Reply with OK.")
    page.press("#input", "Enter")
    notice = page.locator(".message.assistant").last.locator(".notice.history_trimmed")
    expect(notice).to_have_text(TRIMMED, timeout=300_000)  # streamed, before the answer ends
    expect(page.locator("#status")).to_have_text("ready", timeout=300_000)
    # Once the answer is stored the page redraws the chat from history: the notice stays.
    expect(page.locator(".message")).to_have_count(6)
    expect(page.locator(".message.assistant").last.locator(".notice.history_trimmed")) \
        .to_have_text(TRIMMED)
    assert page.locator(".message.assistant").last.locator(".body").inner_text().strip()
    page.reload()
    expect(page.locator(".message")).to_have_count(6)
    expect(page.locator(".notice.history_trimmed")).to_have_count(1)
    expect(page.locator(".message.assistant").last.locator(".notice.history_trimmed")) \
        .to_be_visible()


@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_second_chat_shows_its_place_in_the_queue(long_answers: ServiceProcess, chromium,  # noqa: ANN001, F811
                                                  viewport: str) -> None:
    busy = new_page(chromium, viewport)
    busy.goto(long_answers.url + "/")
    busy.wait_for_selector("body[data-ready]")
    busy.fill("#input", "Write a very long story about a dragon who learns to cook.")
    busy.press("#input", "Enter")
    expect(busy.locator("#status")).to_have_attribute("data-kind", "generating")
    expect(busy.locator(".message.assistant .body").last).to_have_text(re.compile(r"\w+ \w+"))

    waiting = new_page(chromium, viewport)
    waiting.goto(long_answers.url + "/")
    waiting.wait_for_selector("body[data-ready]")
    waiting.fill("#input", "Say hello.")
    waiting.press("#input", "Enter")
    status = waiting.locator("#status")
    expect(status).to_have_text("waiting in queue: position 1")
    expect(status).to_have_attribute("data-kind", "queued")
    expect(status).to_be_visible()
    assert waiting.locator(".message.assistant .body").last.inner_text().strip() == ""
    # Stop the busy one: the waiting chat gets the model and is answered.
    busy.click("#stop")
    expect(busy.locator("#status")).to_have_text("stopped")
    expect(status).to_have_text("ready", timeout=300_000)
    assert waiting.locator(".message.assistant .body").last.inner_text().strip()
