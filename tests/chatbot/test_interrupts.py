"""An interrupted answer frees the model at once, from each client: Stop in the browser page,
Ctrl-C (a real SIGINT) in `tinyllm chat`, and a client of the chatbot's OpenAI endpoint that
closes its stream mid-answer.

The llmserver behind the chatbot has one slot: were the long answer still generating after
the interrupt, the next request would wait behind it. Each test measures the decode speed
while the long answer streams (llmserver's token counter), interrupts it, then requires (1)
the slot to be free and the token counter to stop far short of the answer's max_tokens, and
(2) the next request's first token within a third of the time the rest of the long answer
would have taken at the measured speed (capped at 30 s for a loaded machine).
"""

from __future__ import annotations

import json
import re
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pexpect
import pytest

from tests.chatbot.conftest import chatbot_env
from tests.chatbot.test_browser import chromium, expect, new_page  # noqa: F401 (fixture)
from tests.llmserver.helpers import metric
from tests.utils.procs import ServiceProcess, wait_for
from tinyllm.procs import REPO

pytestmark = pytest.mark.slow
MAX_TOKENS = 1500  # the long answer; SmolLM2's dragon story at temperature 0 runs to length
LONG = "Write a very long story about a dragon who learns to cook."
SHORT = "Say hello."
FREE_S = 10.0  # the slot must be free this soon after the interrupt (loaded machine)


@pytest.fixture(scope="module")
def one_slot(models_dir: Path) -> Iterator[ServiceProcess]:
    """An llmserver with a single slot: a second request waits while the first generates."""
    env = {"LLMSERVER_MODELS_DIR": str(models_dir), "LLMSERVER_QUEUE_SIZE": "2",
           "LLMSERVER_PARALLEL": "1", "LLMSERVER_N_CTX": "2048"}
    with ServiceProcess("llmserver", "LLMSERVER_", env=env) as proc:
        yield proc


@pytest.fixture(scope="module")
def gateway(one_slot: ServiceProcess) -> Iterator[ServiceProcess]:
    """A chatbot (no login) in front of it; long answers, the loop guard off (the dragon
    story repeats itself and the guard would end it, freeing the model by itself)."""
    env = chatbot_env(one_slot.url, CHATBOT_ANSWER_TOKENS=str(MAX_TOKENS),
                      CHATBOT_LOOP_REPEATS="0", CHATBOT_QUEUE_SIZE="4")
    with ServiceProcess("chatbot", "CHATBOT_", env=env) as proc:
        yield proc


def tokens(llm: ServiceProcess) -> float:
    return metric(llm.url, "llm_tokens_generated_total")


@dataclass
class Interrupted:
    """What the long answer did: tokens before the interrupt, tokens in all, and the bound
    the next first token must meet."""

    at_interrupt: float
    total: float
    bound_s: float


def interrupt_long_answer(llm: ServiceProcess, streaming: Callable[[], None],
                          interrupt: Callable[[], None]) -> Interrupted:
    """`streaming()` starts the long answer and returns once the client shows text;
    `interrupt()` cuts it off. Checks the slot is freed and returns the bound for the next
    request's first token."""
    # The previous test's short answer may still be ending (it was closed at its first token).
    wait_for(lambda: metric(llm.url, "llm_slots_busy") == 0, 60, "an idle model to start")
    before = tokens(llm)
    streaming()
    # The decode speed now, from llmserver's counter over at least 5 tokens.
    t1, n1 = time.monotonic(), tokens(llm)
    wait_for(lambda: tokens(llm) >= n1 + 5, 60, "the long answer to keep generating")
    t2, n2 = time.monotonic(), tokens(llm)
    rate = (n2 - n1) / (t2 - t1)
    interrupt()
    at_interrupt = tokens(llm) - before
    wait_for(lambda: metric(llm.url, "llm_slots_busy") == 0, FREE_S, "the slot to be freed")
    time.sleep(0.5)  # a slot still generating would move the counter meanwhile
    total = tokens(llm) - before
    remaining_s = (MAX_TOKENS - total) / rate
    bound = min(30.0, remaining_s / 3)
    assert total < MAX_TOKENS / 3, f"{total:.0f} of {MAX_TOKENS} tokens generated"
    assert total <= at_interrupt + rate * (FREE_S + 1), "it kept generating after the interrupt"
    assert bound > 1.0, f"the rest would take only {remaining_s:.1f}s: no contrast to measure"
    return Interrupted(at_interrupt, total, bound)


def content(line: str) -> str:
    """The text of one `data:` line of an OpenAI chat stream."""
    data = line[5:].strip()
    if data == "[DONE]":
        return ""
    return "".join((c.get("delta") or {}).get("content") or ""
                   for c in json.loads(data)["choices"])


def first_token_s(send: Callable[[], None],
                  wait_first: Callable[[], None]) -> float:
    started = time.monotonic()
    send()
    wait_first()
    return time.monotonic() - started


def test_gateway_client_closing_its_stream_frees_the_model(one_slot: ServiceProcess,
                                                           gateway: ServiceProcess) -> None:
    body = {"messages": [{"role": "user", "content": LONG}], "max_tokens": MAX_TOKENS,
            "temperature": 0, "stream": True, "logit_bias": {"0": -100, "2": -100}}
    with httpx.Client(base_url=gateway.url, timeout=120) as client:
        holder: dict = {}

        def streaming() -> None:
            holder["cm"] = client.stream("POST", "/v1/chat/completions", json=body)
            response = holder["cm"].__enter__()
            assert response.status_code == 200, response.read()
            holder["lines"] = response.iter_lines()
            seen = 0
            for line in holder["lines"]:
                seen += bool(line.startswith("data:") and content(line))
                if seen >= 3:
                    return
            raise AssertionError("the long answer ended early")

        done = interrupt_long_answer(one_slot, streaming,
                                     lambda: holder["cm"].__exit__(None, None, None))
        first: dict = {}

        def send() -> None:
            first["cm"] = client.stream("POST", "/v1/chat/completions", json={
                "messages": [{"role": "user", "content": SHORT}], "max_tokens": 4,
                "temperature": 0, "stream": True})
            first["response"] = first["cm"].__enter__()

        def wait_first() -> None:
            for line in first["response"].iter_lines():
                if line.startswith("data:") and content(line):
                    return

        took = first_token_s(send, wait_first)
        first["cm"].__exit__(None, None, None)
    assert took < done.bound_s, f"first token after {took:.1f}s (bound {done.bound_s:.1f}s)"


def test_ctrl_c_in_the_terminal_chat_frees_the_model(one_slot: ServiceProcess,
                                                     gateway: ServiceProcess) -> None:
    child = pexpect.spawn(sys.executable, ["-m", "tinyllm", "chat", "--base-url",
                                           gateway.url + "/v1", "--temperature", "0",
                                           "--max-tokens", str(MAX_TOKENS)],
                          cwd=str(REPO), encoding="utf-8", timeout=120, dimensions=(40, 200))
    try:
        child.expect_exact("you> ")

        def streaming() -> None:
            child.sendline(LONG)
            child.expect_exact("bot> ")
            child.expect(r"\w+ \w+ \w+")

        def interrupt() -> None:
            child.sendintr()  # SIGINT to the terminal's foreground process
            child.expect_exact("[stopped]")
            child.expect_exact("you> ")

        done = interrupt_long_answer(one_slot, streaming, interrupt)
        # A new conversation (/reset): the next prompt is as short as the first.
        child.sendline("/reset")
        child.expect_exact("you> ")
        took = first_token_s(lambda: child.sendline(SHORT),
                             lambda: (child.expect_exact("bot> "), child.expect(r"\w")))
        child.expect_exact("you> ")
        child.sendline("")
        child.expect(pexpect.EOF)
    finally:
        child.close(force=True)
    assert took < done.bound_s, f"first token after {took:.1f}s (bound {done.bound_s:.1f}s)"


@pytest.mark.browser
def test_stop_in_the_browser_frees_the_model(one_slot: ServiceProcess, gateway: ServiceProcess,
                                             chromium) -> None:  # noqa: ANN001, F811
    page = new_page(chromium, "desktop")
    page.goto(gateway.url + "/")
    page.wait_for_selector("body[data-ready]")

    def streaming() -> None:
        page.fill("#input", LONG)
        page.press("#input", "Enter")
        expect(page.locator(".message.assistant .body").last).to_have_text(
            re.compile(r"\w+ \w+ \w+"))

    def interrupt() -> None:
        page.click("#stop")
        expect(page.locator("#status")).to_have_text("stopped")

    done = interrupt_long_answer(one_slot, streaming, interrupt)
    expect(page.locator(".message.assistant .notice.status-stopped")).to_have_count(1)
    page.click("#new-chat")
    expect(page.locator(".message")).to_have_count(0)

    def send() -> None:
        page.fill("#input", SHORT)
        page.press("#input", "Enter")

    def wait_first() -> None:
        page.wait_for_function("() => { const b = document.querySelectorAll("
                               "'.message.assistant .body'); return b.length && "
                               "b[b.length - 1].textContent.trim().length > 0; }",
                               polling=20, timeout=120_000)

    took = first_token_s(send, wait_first)
    expect(page.locator("#status")).to_have_text("ready", timeout=120_000)
    assert took < done.bound_s, f"first token after {took:.1f}s (bound {done.bound_s:.1f}s)"
