"""`tinyllm chat` in a pseudo-terminal: memory across turns, Ctrl-C stops only the answer, and
no escape sequence from the model reaches the terminal."""

from __future__ import annotations

import sys

import pexpect
import pytest

from tests.chatbot.fake_llm import fake_llm
from tests.utils.procs import ServiceProcess
from tinyllm.procs import REPO

pytestmark = pytest.mark.slow


def spawn(*args: str) -> pexpect.spawn:
    return pexpect.spawn(sys.executable, ["-m", "tinyllm", "chat", *args], cwd=str(REPO),
                         encoding="utf-8", timeout=90, dimensions=(40, 200))


def test_two_turns_through_the_gateway_then_ctrl_c(chatbot: ServiceProcess) -> None:
    child = spawn("--base-url", chatbot.url + "/v1", "--temperature", "0", "--max-tokens", "400")
    child.expect("Chatting with smollm2-135m-instruct")
    child.expect_exact("you> ")
    child.sendline("Remember the word banana.")
    child.expect_exact("you> ")
    child.sendline("Which word did I ask you to remember?")
    child.expect_exact("bot> ")
    child.expect_exact("you> ")
    assert "banana" in child.before.lower()
    child.sendline("Write a very long story about a dragon who learns to cook.")
    child.expect_exact("bot> ")
    child.expect(r"\w+ \w+ \w+")  # the answer is streaming
    child.sendintr()
    child.expect_exact("[stopped]")
    child.expect_exact("you> ")  # the program goes on
    child.sendline("")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 0


def test_readable_error_when_the_server_is_down() -> None:
    child = spawn("--base-url", "http://127.0.0.1:9/v1")
    child.expect("error: cannot reach http://127.0.0.1:9/v1")
    child.expect(pexpect.EOF)
    child.close()
    assert child.exitstatus == 1


def test_works_straight_against_llmserver(llm_server: ServiceProcess) -> None:
    child = spawn("--base-url", llm_server.url + "/v1", "--max-tokens", "16")
    child.expect_exact("you> ")
    child.sendline("Hi")
    child.expect_exact("bot> ")
    child.expect_exact("you> ")
    assert child.before.strip()
    child.sendeof()
    child.expect(pexpect.EOF)


HOSTILE = ["Hello", "\x1b]0;pwned\x07", " wor", "\x1b[2J", "ld", "\x1b[3", "1m red", "\x1b[0m",
           " \x9b31m", "C1", " ding\x07", "\x1b", "]8;;http://evil.test\x1b", "\\link\x1b]8;;",
           "\x1b\\", "\tend\r\n", "next\x00 line\x7f\x85"]
SEEN = "Hello world red C1 dinglink\tend\nnext line"  # what the model says, controls stripped


def test_escape_sequences_from_the_model_never_reach_the_terminal() -> None:
    """A title change, a screen clear, colour split across chunks, a C1 CSI, bells, a
    hyperlink, CR, NUL, DEL and NEL: only the visible text is printed."""
    with fake_llm("", chunks=HOSTILE) as url:
        child = spawn("--base-url", url + "/v1")
        child.expect_exact("you> ")
        child.sendline("Say hello")
        child.expect_exact("bot> ")
        child.expect_exact("you> ")
        shown = child.before
        child.sendline("")
        child.expect(pexpect.EOF)
    assert shown == SEEN.replace("\n", "\r\n") + "\r\n"  # the pty turns \n into \r\n
    for control in ("\x1b", "\x07", "\x9b", "\x00", "\x7f", "\x85", "pwned", "evil"):
        assert control not in shown
