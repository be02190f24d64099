"""Conversations outlive the process: a restart, a kill -9 mid-answer, and two replicas
sharing PostgreSQL, against the real llmserver."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from tests.chatbot.conftest import (
    answer_of,
    chat_events,
    chatbot_env,
    conversation_of,
    login,
)
from tests.utils.procs import ServiceProcess

pytestmark = pytest.mark.slow
STORY = "Write a very long story about a dragon who learns to cook."


def test_restart_and_kill_mid_answer_keep_everything(llm_server: ServiceProcess,
                                                     db_url: str) -> None:
    env = chatbot_env(llm_server.url, CHATBOT_DATABASE_URL=db_url, CHATBOT_AUTH="accounts",
                      CHATBOT_ANSWER_TOKENS="400", CHATBOT_ANSWER_LEASE_S="2",
                      # the long story must still be streaming when the chatbot is killed
                      CHATBOT_LOOP_REPEATS="0")
    bot = ServiceProcess("chatbot", "CHATBOT_", env=env)
    with bot, httpx.Client(base_url=bot.url, timeout=120) as client:
        login(client, "admin", route="setup")
        first = chat_events(client, "Say hello to Ada.")
        cid = conversation_of(first)
        bot.stop()
        bot.start()  # a clean restart: the login and the conversation are still there
        conv = client.get(f"/api/conversations/{cid}").json()
        assert [m["content"] for m in conv["messages"]] == ["Say hello to Ada.",
                                                           answer_of(first)]

        # kill -9 while an answer streams: the text so far is kept, marked interrupted.
        streamed = ""
        with client.stream("POST", "/api/chat", json={"conversation_id": cid,
                                                      "message": STORY}) as r:
            started = None
            name = ""
            for line in r.iter_lines():
                if line.startswith("event:"):
                    name = line[6:].strip()
                elif line.startswith("data:") and name == "token":
                    streamed += json.loads(line[5:])["text"]
                    started = started or time.monotonic()
                    if time.monotonic() - started > 2.5 and len(streamed) > 40:
                        break
            bot.kill()
        bot.start()
        deadline = time.monotonic() + 30
        while True:
            last = client.get(f"/api/conversations/{cid}").json()["messages"][-1]
            if last["status"] != "streaming" or time.monotonic() > deadline:
                break
            time.sleep(0.5)  # until the dead writer's lease lapses
        assert last["role"] == "assistant" and last["status"] == "interrupted"
        assert len(last["content"]) >= 20 and streamed.startswith(last["content"])
        listed = client.get("/api/conversations").json()["data"]
        assert [c["id"] for c in listed] == [cid]
        # The conversation goes on after the crash.
        events = chat_events(client, "Say goodbye.", conversation_id=cid)
        assert events[-1][0] == "done"
        assert len(client.get(f"/api/conversations/{cid}").json()["messages"]) == 6


def test_two_replicas_on_postgresql_serve_one_user_alternately(
        llm_server: ServiceProcess, pg_server: str) -> None:
    from tests.chatbot.pg import reset

    reset(pg_server)
    # Answers long enough that the second replica's turn arrives while the first one streams.
    env = chatbot_env(llm_server.url, CHATBOT_DATABASE_URL=pg_server, CHATBOT_AUTH="accounts",
                      CHATBOT_ANSWER_TOKENS="200", CHATBOT_LOOP_REPEATS="0")
    with ServiceProcess("chatbot", "CHATBOT_", env=env) as a, \
            ServiceProcess("chatbot", "CHATBOT_", env=env) as b, \
            httpx.Client(base_url=a.url, timeout=120) as on_a, \
            httpx.Client(base_url=b.url, timeout=120) as on_b:
        login(on_a, "admin", route="setup")
        on_b.cookies.update(on_a.cookies)  # the same browser, no sticky sessions
        assert on_b.get("/api/me").json()["user"]["username"] == "admin"
        cid = conversation_of(chat_events(on_a, "My name is Ada. Say hi."))
        chat_events(on_b, "What is my name?", conversation_id=cid)
        chat_events(on_a, "Thank you.", conversation_id=cid)
        for client in (on_a, on_b):
            conv = client.get(f"/api/conversations/{cid}").json()
            assert [m["role"] for m in conv["messages"]] == ["user", "assistant"] * 3
            assert all(m["status"] == "complete" for m in conv["messages"]), \
                [(m["role"], m["status"], m["content"][:80]) for m in conv["messages"]]
            assert [c["id"] for c in client.get("/api/conversations?q=ada").json()["data"]] \
                == [cid]
        # One answer at a time per conversation, across replicas.
        with on_a.stream("POST", "/api/chat", json={"conversation_id": cid,
                                                    "message": STORY}) as running:
            lines = running.iter_lines()  # kept open: closing it would hang up on the answer
            assert next(line for line in lines if line.startswith("data:"))
            busy = chat_events(on_b, "Interrupting.", conversation_id=cid)
            assert busy[-1][0] == "error", busy[-3:]
            assert busy[-1][1]["error"]["code"] == "answer_in_progress"
        assert on_a.post("/api/auth/logout").status_code == 200
        assert on_b.get("/api/me").status_code == 401  # logged out everywhere
