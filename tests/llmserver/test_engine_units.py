"""Engine pieces without a model: text held back for stop strings, slot routing."""

from __future__ import annotations

from llmserver.engine.slots import Slot, common_prefix, route
from llmserver.engine.task import Task
from llmserver.engine.text import TextStream


def test_stop_string_split_across_tokens_is_never_sent() -> None:
    stream = TextStream(["<END>"])
    sent = []
    for piece in [b"Hello ", b"wor", b"ld <E", b"N", b"D> more"]:
        text, stopped = stream.feed(piece)
        sent.append(text)
        if stopped:
            break
    assert "".join(sent) == "Hello world "
    assert stopped


def test_held_text_that_is_not_a_stop_is_released() -> None:
    stream = TextStream(["<END>"])
    assert stream.feed(b"a <E") == ("a ", False)
    assert stream.feed(b"xtra") == ("<Extra", False)
    assert stream.flush() == ""


def test_split_utf8_character_waits_for_its_last_byte() -> None:
    stream = TextStream([])
    euro = "€".encode()
    assert stream.feed(euro[:2]) == ("", False)
    assert stream.feed(euro[2:]) == ("€", False)


def _task(prompt: list[int], n: int = 1) -> Task:
    samplers: list = [None] * n  # routing only looks at how many choices there are
    return Task(prompt=prompt, max_tokens=1, samplers=samplers, sink=lambda e: None)


def test_route_prefers_the_longest_cached_prefix() -> None:
    slots = [Slot(0, cache=[1, 2, 9]), Slot(1, cache=[1, 2, 3, 4]), Slot(2, cache=[])]
    assert common_prefix([1, 2, 3, 4, 5], [1, 2, 3, 9]) == 3
    assert [s.seq for s in route(slots, _task([1, 2, 3, 4, 5]))] == [1]
    assert [s.seq for s in route(slots, _task([1, 2, 9, 9], n=2))] == [0, 1]
