"""Chat commands: answered by the chatbot, never by the model, in the browser API, through the
gateway for `tinyllm chat`, in the terminal, and in a real Chromium with the hint list."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import openai
import pexpect
import pytest

from chatbot import commands
from tests.chatbot.conftest import answer_of, chat_events, chatbot_env, conversation_of
from tests.chatbot.fake_llm import fake_llm
from tests.chatbot.test_browser import VIEWPORTS, chromium, new_page, send  # noqa: F401
from tests.utils.procs import ServiceProcess
from tinyllm.procs import REPO

ANSWER = "A scripted answer."


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[ServiceProcess, dict]]:
    """A chatbot in front of the scripted upstream (rag down); the upstream's request log."""
    stats: dict = {}
    with fake_llm(ANSWER, stats=stats) as llm, ServiceProcess(
            "chatbot", "CHATBOT_", env=chatbot_env(
            llm, CHATBOT_DEFAULT_MODEL="scripted")) as bot:
        yield bot, stats


def command(client: httpx.Client, text: str, **body: Any) -> dict:
    events = chat_events(client, text, **body)
    assert [n for n, _ in events] == ["command", "done"], events
    return events[0][1]


def test_commands_are_answered_by_the_chatbot_not_the_model(scripted) -> None:  # noqa: ANN001
    bot, stats = scripted
    with httpx.Client(base_url=bot.url, timeout=60) as client:
        before = len(stats["requests"])
        help_ = command(client, "/help")
        for usage, _ in commands.COMMANDS:
            assert f"`{usage}`" in help_["text"]
        unknown = command(client, "/frobnicate now")
        assert unknown["command"] == "frobnicate"
        assert unknown["text"].startswith("Unknown command `/frobnicate`.")
        assert "`/think on|off`" in unknown["text"]
        assert command(client, "/")["text"].startswith("Commands:")
        assert "Model: `scripted`. Available: `scripted`." == command(client, "/model")["text"]
        assert "No model named `nope`" in command(client, "/model nope")["text"]
        assert command(client, "/version")["text"].startswith("TinyLLM ")
        assert command(client, "/reset")["action"] == "reset"
        rag = command(client, "/rag docs 3")  # rag is down: said so, nothing changed
        assert rag["text"].startswith("`/rag` failed:") and rag["state"]["collection"] is None
        # k out of bounds is refused before rag is asked anything (rag is down here, so a
        # call to it would answer "failed" instead).
        for k in ("0", "21", "99"):
            bound = command(client, f"/rag docs {k}")
            assert bound["text"] == "k must be between 1 and 20.", bound
            assert bound["state"] == rag["state"]  # k and collection as they were
        assert command(client, "/rag docs 20")["text"].startswith("`/rag` failed:")  # in bounds
        assert command(client, "/think maybe")["text"].startswith("Usage: `/think on`")
        assert len(stats["requests"]) == before  # nothing reached the model
        assert client.get("/api/conversations").json()["data"] == []  # nothing stored

        # In a conversation: the change is kept with it and used by the next turn.
        cid = conversation_of(chat_events(client, "Hello"))
        off = command(client, "/think off", conversation_id=cid)
        assert off["state"]["think"] is False and off["text"] == "Thinking is hidden."
        conv = client.get(f"/api/conversations/{cid}").json()
        assert conv["think"] is False and len(conv["messages"]) == 2  # the command is not stored
        assert command(client, "/think on", conversation_id=cid)["state"]["think"] is True
        # A message that merely contains a slash is a question for the model.
        events = chat_events(client, "What is 6/3?", conversation_id=cid)
        assert answer_of(events) == ANSWER
        hints = client.get("/api/commands").json()["data"]
        assert [h["usage"] for h in hints] == [u for u, _ in commands.COMMANDS]


def test_gateway_answers_commands_only_for_tinyllm_chat_clients(scripted) -> None:  # noqa: ANN001
    bot, stats = scripted
    gw = openai.OpenAI(base_url=bot.url + "/v1", api_key="none", max_retries=0)
    before = len(stats["requests"])
    reply = gw.chat.completions.create(model="scripted", extra_body={"chat_tools": True},
                                       messages=[{"role": "user", "content": "/model"}])
    assert reply.choices[0].message.content.startswith("Model: `scripted`")
    assert reply.model_extra["command"]["state"]["model"] == "scripted"
    chunks = list(gw.chat.completions.create(
        model="scripted", stream=True, extra_body={"chat_tools": True},
        messages=[{"role": "user", "content": "/think off"}]))
    assert chunks[0].choices[0].delta.content == "Thinking is hidden."
    assert chunks[0].model_extra["command"]["state"]["think"] is False
    assert len(stats["requests"]) == before
    # Any other OpenAI client: a slash is just text for the model.
    plain = gw.chat.completions.create(model="scripted",
                                       messages=[{"role": "user", "content": "/model"}])
    assert plain.choices[0].message.content == ANSWER
    assert len(stats["requests"]) == before + 1


def test_rag_command_picks_a_collection_and_k() -> None:
    class Rag:
        async def call(self, method: str, path: str, **kw: Any) -> dict:
            return {"data": [{"name": "docs"}, {"name": "notes"}]}

    state = commands.State("m", None, 4)
    out = asyncio.run(commands.run("/rag notes 7", state, None, Rag()))  # type: ignore[arg-type]
    assert out.changed and out.state.collection == "notes" and out.state.rag_k == 7
    assert out.text == "Answering from `notes` (7 chunks a question)."
    missing = asyncio.run(commands.run("/rag other", state, None, Rag()))  # type: ignore[arg-type]
    assert not missing.changed and "Collections: `docs`, `notes`." in missing.text
    off = asyncio.run(commands.run("/rag off", out.state, None, Rag()))  # type: ignore[arg-type]
    assert off.changed and off.state.collection is None
    bad = asyncio.run(commands.run("/rag notes 0", state, None, Rag()))  # type: ignore[arg-type]
    assert bad.text == "k must be between 1 and 20." and not bad.changed


def test_terminal_chat_has_the_commands(scripted) -> None:  # noqa: ANN001
    bot, _ = scripted
    child = pexpect.spawn(sys.executable, ["-m", "tinyllm", "chat", "--base-url",
                                           bot.url + "/v1"], cwd=str(REPO), encoding="utf-8",
                          timeout=60, dimensions=(40, 200))
    child.expect("/help lists commands")
    child.expect_exact("you> ")
    child.sendline("/help")
    child.expect_exact("`/rag off`: stop answering from documents")
    child.expect_exact("you> ")
    child.sendline("/bogus")
    child.expect_exact("Unknown command `/bogus`.")
    child.expect_exact("you> ")
    child.sendline("Hi")
    child.expect_exact(ANSWER)
    child.expect_exact("you> ")
    child.sendline("")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_hint_list_and_commands_in_the_page(
        scripted, chromium, viewport: str) -> None:  # noqa: ANN001, F811
    bot, stats = scripted
    from playwright.sync_api import expect
    page = new_page(chromium, viewport)
    page.goto(bot.url + "/")
    page.wait_for_selector("body[data-ready]")
    hints = page.locator("#command-hints li")
    page.locator("#input").press_sequentially("/")
    expect(hints).to_have_count(len(commands.COMMANDS))
    page.locator("#input").press_sequentially("th")
    expect(hints).to_have_count(1)
    expect(hints.first).to_contain_text("show or hide a thinking model's reasoning")
    hints.first.dispatch_event("mousedown")
    expect(page.locator("#input")).to_have_value("/think ")
    page.fill("#input", "hello")
    page.dispatch_event("#input", "input")
    expect(page.locator("#command-hints")).to_be_hidden()
    before = len(stats["requests"])
    send(page, "/bogus")
    reply = page.locator(".message.assistant.command .body").last
    expect(reply).to_contain_text("Unknown command /bogus.")
    expect(reply.locator("li")).to_have_count(len(commands.COMMANDS))
    send(page, "/model")
    expect(page.locator(".message.assistant.command .body").last).to_have_text(
        "Model: scripted. Available: scripted.")
    assert len(stats["requests"]) == before
    send(page, "Hello")  # a real turn after commands
    expect(page.locator(".message.assistant .body").last).to_have_text(ANSWER)
    page.fill("#input", "/reset")
    page.press("#input", "Enter")
    expect(page.locator("#status")).to_have_text("new chat")
    expect(page.locator(".message")).to_have_count(0)
    expect(page.locator("#conv-bar")).to_be_hidden()
