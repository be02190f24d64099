"""The loop guard: pure detection, a scripted endless loop through the real pipeline (the
upstream is hung up on, the answer stored as stopped for repetition), and a real SmolLM2 loop."""

from __future__ import annotations

import re
import time

import httpx
import openai
import pytest

from chatbot.loopguard import LoopGuard, repeating
from tests.chatbot.conftest import answer_of, chat_events, chatbot_env, conversation_of
from tests.chatbot.fake_llm import fake_llm
from tests.utils.procs import ServiceProcess, wait_for

# What SmolLM2-135M really produced at temperature 0 (see the real-model test below).
FRUITS = "Here are 20 fruits:\n\n* Banana\n* Apple\n" + "* Apple\n" * 6
POEM = "In the depths of the ocean,\nAbe a poem, a sea of words,\n" + "Abe a sea of words,\n" * 3
STORY = "There was a time. " + "I was a little cat, and I was a cat. " * 3
NUMBERED = "".join(f"{i}. Apple\n" for i in range(1, 8))


def same_passage(a: str, b: str) -> bool:
    """The guard's rule (chatbot/loopguard.py's docstring): a run of whitespace is one gap
    and a number is a number whatever its digits, so "1. Apple\n" and "7. Apple\n" repeat
    one passage. Compared here in a spelling of its own, not the guard's."""
    def canonical(text: str) -> str:
        return re.sub(r"\s+", " ", re.sub(r"[0-9]+", "#", text))
    return canonical(a) == canonical(b)


# Each text ends with the unit it repeats, as written in the text.
@pytest.mark.parametrize("text,unit", [
    (FRUITS, "* Apple\n"), (POEM, "Abe a sea of words,\n"),
    (STORY, "I was a little cat, and I was a cat. "), (NUMBERED, "7. Apple\n")],
    ids=["fruits", "poem", "story", "numbered"])
def test_loops_are_caught(text: str, unit: str) -> None:
    assert text.endswith(unit)
    passage = repeating(text, 600, 3, 48)
    assert passage is not None and same_passage(passage, unit), passage


SPACED = "".join(f"* Apple{gap}" for gap in ["\n", " \n", "\n\n", "\n", "  \n", "\t\n", "\n"])


@pytest.mark.parametrize("text", [NUMBERED, SPACED], ids=["numbers", "whitespace"])
def test_loops_are_caught_by_the_rule_not_letter_for_letter(text: str) -> None:
    # No passage repeats letter for letter at the end: the numbers or the gaps differ.
    assert not any(text.endswith(text[-n:] * 3) for n in range(1, len(text) // 3))
    assert repeating(text, 600, 3, 48) is not None


def test_numbers_alone_are_not_a_loop() -> None:
    assert repeating("".join(f"{i}. {fruit}\n" for i, fruit in enumerate(
        ["Apple", "Pear", "Plum", "Fig", "Kiwi", "Lime", "Date"], 1)), 600, 3, 48) is None


@pytest.mark.parametrize("text", [
    "ha ha ha ha ha ha",  # a short refrain: under the minimum span
    "The capital of France is Paris. Paris is a big city with many museums.",
    "Apple, banana, cherry. " * 2,  # twice is not a loop
    "",
])
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert repeating(text, 600, 3, 48) is None


def test_guard_trips_once_while_streaming_and_can_be_turned_off() -> None:
    guard = LoopGuard(600, 3, 48)
    pieces = re.findall(r"\S+\s*", STORY)
    tripped_at = next(i for i, p in enumerate(pieces) if guard.feed(p))
    assert tripped_at == len(pieces) - 1 and guard.tripped
    assert guard.feed("more") is True  # stays tripped
    off = LoopGuard(600, 0, 48)
    assert not any(off.feed(p) for p in pieces * 5)


LOOP = "Here is a list: " + "the same line again and again, " * 400


def test_scripted_loop_is_stopped_upstream_freed_and_stored_as_repetition() -> None:
    stats: dict = {}
    with fake_llm(LOOP, delay_s=0.005, stats=stats) as llm, ServiceProcess(
            "chatbot", "CHATBOT_", env=chatbot_env(llm)) as bot, \
            httpx.Client(base_url=bot.url, timeout=60) as client:
        events = chat_events(client, "Say something.")
        names = [n for n, _ in events]
        assert names[-1] == "done" and events[-1][1]["finish_reason"] == "repetition"
        notice = next(d for n, d in events if n == "notice")
        assert notice["code"] == "repetition"
        text = answer_of(events)
        assert text.count("the same line again and again,") == 3  # stopped at the 3rd repeat
        deadline = time.monotonic() + 10
        while not stats["closed_early"] and time.monotonic() < deadline:
            time.sleep(0.05)
        assert stats["closed_early"], "the upstream stream was not hung up on"
        assert stats["chunks"] < 100  # of ~2,400 words
        cid = conversation_of(events)
        msg = client.get(f"/api/conversations/{cid}").json()["messages"][-1]
        assert msg["status"] == "repetition" and msg["content"] == text
        assert msg["meta"]["finish_reason"] == "repetition"
        # The gateway: on for TinyLLM's chat client, off for other OpenAI clients.
        gw = openai.OpenAI(base_url=bot.url + "/v1", api_key="none", max_retries=0)
        guarded = gw.chat.completions.create(model="scripted", extra_body={"chat_tools": True},
                                             messages=[{"role": "user", "content": "Go"}])
        assert guarded.choices[0].finish_reason == "stop"
        assert guarded.model_extra["stop_reason"] == "repetition"
        assert guarded.choices[0].message.content.count("the same line") == 3
        chunks = list(gw.chat.completions.create(
            model="scripted", stream=True, extra_body={"chat_tools": True},
            messages=[{"role": "user", "content": "Go"}]))
        assert chunks[-1].model_extra["stop_reason"] == "repetition"


@pytest.mark.slow
def test_real_smollm2_loop_is_stopped(llm_server: ServiceProcess) -> None:
    """SmolLM2-135M at temperature 0 lists one fruit forever; the guard cuts it early."""
    with ServiceProcess("chatbot", "CHATBOT_", env=chatbot_env(
            llm_server.url, CHATBOT_ANSWER_TOKENS="400")) as bot, \
            httpx.Client(base_url=bot.url, timeout=300) as client:
        before = metric(llm_server.url, "llm_tokens_generated_total")
        events = chat_events(client, "List 20 fruits.")
        text = answer_of(events)
        kind, done = events[-1]
        assert kind == "done" and done["finish_reason"] == "repetition", text
        assert done["status"] == "repetition" and done["answer_id"]
        # The model is freed: llmserver's slots all go idle (a leaked slot never does) ...
        wait_for(lambda: idle(llm_server.url), 30, "llmserver's slots to go idle")
        # ... because the answer was cut, not because it ran out of tokens.
        spent = metric(llm_server.url, "llm_tokens_generated_total") - before
        assert spent < 200, spent  # of the 400 it would have written
        assert repeating(text, 600, 3, 48) is not None
        msg = client.get(f"/api/conversations/{conversation_of(events)}").json()["messages"][-1]
        assert msg["status"] == "repetition"
        assert answer_of(chat_events(client, "Say hello."))


def metric(url: str, name: str) -> float:
    text = httpx.get(url + "/metrics", timeout=10).text
    return float(re.search(rf"^{name} (\S+)", text, re.M).group(1))


def idle(url: str) -> bool:
    """No slot of llmserver busy and no request of it in flight."""
    return metric(url, "llm_slots_busy") == 0 and metric(url, "llm_generations_in_flight") == 0
