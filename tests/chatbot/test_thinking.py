"""Thinking models: <think>…</think> split from the answer as it streams, shown in a
collapsed block, stored apart, never sent back to the model, hidden by /think off; through an
OpenAI-compatible test server that streams a fixed <think> answer, and through llmserver,
which sends the reasoning apart."""

from __future__ import annotations

import io
import re
from collections.abc import Iterator

import httpx
import openai
import pytest

from chatbot import terminal
from tests.chatbot.conftest import answer_of, chat_events, chatbot_env, conversation_of
from tests.chatbot.fake_llm import fake_llm
from tests.chatbot.test_browser import VIEWPORTS, chromium, new_page, send  # noqa: F401
from tests.utils import thinking_model
from tests.utils.procs import ServiceProcess

REASONING = "The user asks about turnips. Three were painted, so the answer is 3."
ANSWER = "There are **3** blue turnips."
SCRIPT = f"<think>{REASONING}</think>{ANSWER}"


@pytest.fixture(scope="module")
def thinker() -> Iterator[tuple[ServiceProcess, dict]]:
    stats: dict = {}
    with fake_llm(SCRIPT, delay_s=0.01, stats=stats) as llm, ServiceProcess(
            "chatbot", "CHATBOT_", env=chatbot_env(llm, CHATBOT_DEFAULT_MODEL="scripted")) as bot:
        yield bot, stats


def test_thinking_is_its_own_stream_and_never_goes_back(thinker) -> None:  # noqa: ANN001
    bot, stats = thinker
    with httpx.Client(base_url=bot.url, timeout=60) as client:
        events = chat_events(client, "How many turnips?")
        assert "".join(d["text"] for n, d in events if n == "thinking") == REASONING
        assert answer_of(events) == ANSWER
        cid = conversation_of(events)
        msg = client.get(f"/api/conversations/{cid}").json()["messages"][-1]
        assert msg["content"] == ANSWER and msg["meta"]["thinking"] == REASONING
        chat_events(client, "And now?", conversation_id=cid)
        history = stats["requests"][-1]["messages"]
        assert history[2] == {"role": "assistant", "content": ANSWER}
        assert not any("think" in str(m["content"]) for m in history[1:])
        # /think off: no thinking events; still stored apart, never in the answer.
        off = chat_events(client, "/think off", conversation_id=cid)
        assert off[0][1]["state"]["think"] is False
        events = chat_events(client, "Once more?", conversation_id=cid)
        assert [n for n, _ in events if n == "thinking"] == []
        assert answer_of(events) == ANSWER


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_thinking_block_in_the_page(thinker, chromium, viewport: str) -> None:  # noqa: ANN001, F811
    from playwright.sync_api import expect
    bot, _ = thinker
    page = new_page(chromium, viewport)
    page.goto(bot.url + "/")
    send(page, "How many turnips?")
    answer = page.locator(".message.assistant").last
    block = answer.locator("details.thinking")
    expect(block).to_be_visible()
    expect(block.locator("summary")).to_have_text("Thinking")
    assert block.get_attribute("open") is None  # collapsed
    expect(block.locator(".thinking-text")).to_be_hidden()
    block.locator("summary").click()
    expect(block.locator(".thinking-text")).to_have_text(REASONING)
    expect(answer.locator(".body")).to_have_text("There are 3 blue turnips.")
    expect(answer.locator(".body strong")).to_have_text("3")
    # The block is above the answer, and comes back from the stored history.
    assert answer.evaluate("w => w.querySelector('.thinking').nextElementSibling"
                           ".classList.contains('body')")
    page.reload()
    page.wait_for_selector("body[data-ready]")
    expect(page.locator(".message.assistant details.thinking")).to_have_count(1)
    send(page, "/think off")
    expect(page.locator(".message.assistant details.thinking").first).to_be_hidden()
    send(page, "Again?")
    last = page.locator(".message.assistant").last
    expect(last.locator(".body")).to_have_text("There are 3 blue turnips.")
    expect(last.locator("details.thinking")).to_be_hidden()  # kept, not shown
    assert re.search("hide-thinking", page.get_attribute("body", "class") or "")


def test_reasoning_sent_apart_fills_the_thinking_block(chatbot, models_dir) -> None:  # noqa: ANN001
    """A template that opens a <think> block (a real SmolLM2 copy): llmserver sends the
    reasoning as `reasoning_content`; the Thinking block and the stored meta take it from
    there, and /v1 passes the field on, streamed and whole."""
    model = thinking_model.opens_think_model(models_dir)
    with httpx.Client(base_url=chatbot.url, timeout=120) as client:
        events = chat_events(client, "What is the capital of France?", model=model)
        thinking = "".join(d["text"] for n, d in events if n == "thinking")
        assert "Paris" in thinking and "think>" not in thinking + answer_of(events)
        cid = conversation_of(events)
        msg = client.get(f"/api/conversations/{cid}").json()["messages"][-1]
        assert msg["meta"]["thinking"] == thinking and msg["content"] == answer_of(events)
    sdk = openai.OpenAI(base_url=chatbot.url + "/v1", api_key="unused", max_retries=0)
    greedy = {"model": model, "messages": thinking_model.THINK, "temperature": 0, "seed": 1,
              "max_tokens": 40}
    message = sdk.chat.completions.create(**greedy).choices[0].message
    assert message.content == thinking_model.ANSWER
    assert message.model_extra["reasoning_content"] == message.model_extra["reasoning"] == \
        thinking_model.REASONING
    deltas = [c.choices[0].delta for c in sdk.chat.completions.create(**greedy, stream=True)
              if c.choices]
    assert "".join((d.model_extra or {}).get("reasoning_content", "") for d in deltas) == \
        thinking_model.REASONING
    assert "".join(d.content or "" for d in deltas) == thinking_model.ANSWER


def test_the_terminal_shows_reasoning_sent_apart_dimmed(llm_server, models_dir) -> None:  # noqa: ANN001
    """`tinyllm chat` straight against llmserver: the reasoning field is shown dim and left
    out of the answer it keeps."""
    args = terminal.parse_args(["--temperature", "0", "--max-tokens", "40"])
    args.model = thinking_model.opens_think_model(models_dir)  # no model switch
    args.collection, args.rag_k, args.think = None, None, True
    client = openai.OpenAI(base_url=llm_server.url + "/v1", api_key="unused", max_retries=0)
    out = io.StringIO()
    kept = terminal.answer(client, args, list(thinking_model.THINK), out)
    assert kept == thinking_model.ANSWER
    dim = re.compile("\x1b\\[2m(.*?)\x1b\\[0m", re.S)
    assert "".join(dim.findall(out.getvalue())) == thinking_model.REASONING
    assert dim.sub("", out.getvalue()) == thinking_model.ANSWER + "\n"
