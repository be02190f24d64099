"""The <think> splitter: tags cut anywhere across pieces; the client's reading (every block)
and the server's (a leading block, or one the prompt opened; an unclosed one is all
reasoning)."""

from __future__ import annotations

import pytest

from services.thinking import ThinkSplitter, chunk_reasoning, opens_block, reasoning_of, strip

REASONING = "The user asks about turnips. Three were painted, so the answer is 3."
ANSWER = "There are **3** blue turnips. <think>a later tag is text</think>"
CUTS = [1, 2, 3, 5, 7, 100]


def split(text: str, cut: int, **kw: bool) -> tuple[str, str, ThinkSplitter]:
    """(reasoning, answer) of `text` fed `cut` characters at a time."""
    splitter = ThinkSplitter(**kw)
    parts = []
    for i in range(0, len(text), cut):
        parts += splitter.feed(text[i:i + cut])
    parts += splitter.flush()
    return ("".join(t for k, t in parts if k == "thinking"),
            "".join(t for k, t in parts if k == "answer"), splitter)


@pytest.mark.parametrize("cut", CUTS)
def test_every_block_with_tags_cut_anywhere(cut: int) -> None:
    answer = "There are **3** blue turnips."
    reasoning, got, splitter = split(f"<think>{REASONING}</think>{answer}", cut)
    assert (reasoning, got) == (REASONING, answer)
    assert "".join(splitter.thinking) == REASONING


def test_strip_and_plain_text() -> None:
    assert strip("a < b and <thin ice>") == "a < b and <thin ice>"
    assert strip("<think>unfinished") == ""
    assert strip("x<think>y</think>z<think>w</think>") == "xz"


@pytest.mark.parametrize("cut", CUTS)
def test_leading_block_with_tags_cut_anywhere(cut: int) -> None:
    # Whitespace around the tags is the template's layout, not reasoning or answer.
    text = f" \n<think>{REASONING}</think>\n\n{ANSWER}"
    assert split(text, cut, leading=True)[:2] == (REASONING, ANSWER)
    # The prompt opened the block: the text starts inside it.
    assert split(f"{REASONING}</think>{ANSWER}", cut, opened=True, leading=True)[:2] == \
        (REASONING, ANSWER)


@pytest.mark.parametrize("text", ["Hello <think>x</think>", "<thinking>no</thinking>",
                                  "<b>bold</b>", "<", "  ", "", "<thi"])
def test_an_answer_that_does_not_start_with_the_tag_is_all_answer(text: str) -> None:
    for cut in (1, 3, 100):
        assert split(text, cut, leading=True)[:2] == ("", text)


def test_an_unclosed_block_is_all_reasoning() -> None:
    assert split("<think>still thinking</thi", 2, leading=True)[:2] == \
        ("still thinking</thi", "")
    assert split("just thoughts", 4, opened=True, leading=True)[:2] == ("just thoughts", "")


def test_settled_once_the_start_is_decided() -> None:
    plain = ThinkSplitter(leading=True)
    assert plain.feed(" ") == [] and not plain.settled
    assert plain.feed("Hi") == [("answer", " Hi")] and plain.settled
    thinker = ThinkSplitter(leading=True)
    thinker.feed("<think>a</think>")
    assert not thinker.settled  # whitespace after the close is still dropped
    assert thinker.feed("\n") == [] and thinker.feed("b") == [("answer", "b")]
    assert thinker.settled


def test_reasoning_sent_apart_and_prompt_tails() -> None:
    splitter = ThinkSplitter()
    assert splitter.thought("") == [] and splitter.thought("hm") == [("thinking", "hm")]
    assert splitter.thinking == ["hm"]
    assert reasoning_of({"reasoning_content": "a", "reasoning": "a"}) == "a"
    assert reasoning_of({"reasoning": "v"}) == "v" and reasoning_of({"content": "x"}) == ""
    chunk = {"choices": [{"index": 0, "delta": {"reasoning_content": "r"}},
                         {"index": 1, "delta": {"content": "c"}}]}
    assert chunk_reasoning(chunk) == "r" and chunk_reasoning({"choices": []}) == ""
    assert opens_block("<|im_start|>assistant\n<think>\n")
    assert not opens_block("<|im_start|>assistant\n") and not opens_block("</think>")
