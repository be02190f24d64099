"""The chatbot's UI API and OpenAI gateway against a real llmserver (SmolLM2, temperature 0)."""

from __future__ import annotations

import concurrent.futures
import json
import time

import httpx
import openai
import pytest

from tests.chatbot.conftest import answer_of, chat_events, chatbot_env, conversation_of
from tests.utils.procs import ServiceProcess

pytestmark = pytest.mark.slow


def test_ui_chat_streams_stores_and_remembers_the_previous_turn(chatbot: ServiceProcess) -> None:
    with httpx.Client(base_url=chatbot.url, timeout=120) as client:
        first = chat_events(client, "Remember the word banana.")
        names = [name for name, _ in first]
        assert names[:2] == ["conversation", "status"] and names.count("token") > 1
        assert names[-1] == "done"
        cid = conversation_of(first)
        second = chat_events(client, "Which word did I ask you to remember?",
                             conversation_id=cid)
        assert conversation_of(second) == cid
        assert "banana" in answer_of(second).lower()
        conv = client.get(f"/api/conversations/{cid}").json()
        assert [m["role"] for m in conv["messages"]] == ["user", "assistant"] * 2
        assert conv["messages"][3]["content"] == answer_of(second)
        assert conv["messages"][3]["status"] == "complete"
        assert conv["title"] == "Remember the word banana."
        listed = client.get("/api/conversations").json()["data"]
        assert listed[0]["id"] == cid
        # A new conversation does not see the first one's messages.
        alone = chat_events(client, "Which word did I ask you to remember?")
        assert conversation_of(alone) != cid
        assert "banana" not in answer_of(alone).lower()


def test_regenerate_and_edit_replace_the_rest(chatbot: ServiceProcess) -> None:
    with httpx.Client(base_url=chatbot.url, timeout=120) as client:
        cid = conversation_of(chat_events(client, "Say the word apple."))
        chat_events(client, "Now say the word pear.", conversation_id=cid)
        again = chat_events(client, regenerate=True, conversation_id=cid)
        msgs = client.get(f"/api/conversations/{cid}").json()["messages"]
        assert len(msgs) == 4 and msgs[-1]["content"] == answer_of(again)
        assert msgs[-2]["content"] == "Now say the word pear."
        edited = chat_events(client, "Say the word plum.", conversation_id=cid,
                             edit=msgs[0]["id"])
        msgs = client.get(f"/api/conversations/{cid}").json()["messages"]
        assert [m["content"] for m in msgs] == ["Say the word plum.", answer_of(edited)]
        r = client.post("/api/chat", json={"conversation_id": cid, "message": "x",
                                           "edit": 999999})
        events = r.text
        assert "message_not_found" in events
        r = client.post("/api/chat", json={"regenerate": True})
        assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_value"
        r = client.post("/api/chat", json={"conversation_id": "0" * 32, "message": "x"})
        assert r.status_code == 404 and r.json()["error"]["code"] == "conversation_not_found"


def test_persona_knows_todays_date(chatbot: ServiceProcess) -> None:
    with httpx.Client(base_url=chatbot.url, timeout=120) as client:
        answer = answer_of(chat_events(client, "What is today's date?"))
    now = time.localtime()
    assert time.strftime("%B", now) in answer and str(now.tm_year) in answer


def test_rag_down_still_answers_and_says_so(chatbot: ServiceProcess) -> None:
    with httpx.Client(base_url=chatbot.url, timeout=120) as client:
        events = chat_events(client, "Say hello.", collection="manuals")
        notices = [data["code"] for name, data in events if name == "notice"]
        assert notices == ["rag_unavailable"] and answer_of(events)
        r = client.get("/api/collections")
        assert r.status_code == 503 and r.json()["error"]["code"] == "upstream_unavailable"
    sdk = openai.OpenAI(base_url=chatbot.url + "/v1", api_key="x", max_retries=0)
    reply = sdk.chat.completions.create(model="smollm2-135m-instruct", max_tokens=16,
                                        messages=[{"role": "user", "content": "Hi"}],
                                        extra_body={"collection": "manuals"})
    assert reply.choices[0].message.content
    assert reply.model_extra["notices"][0]["code"] == "rag_unavailable"


def test_gateway_with_the_openai_sdk_matches_llmserver(chatbot: ServiceProcess,
                                                       llm_server: ServiceProcess) -> None:
    """Congruence: the same request at temperature 0 gives the same text both ways."""
    msgs = [{"role": "user", "content": "Name three colours."}]
    kw = {"model": "smollm2-135m-instruct", "messages": msgs, "max_tokens": 24,
          "temperature": 0, "seed": 1}
    gateway = openai.OpenAI(base_url=chatbot.url + "/v1", api_key="x", max_retries=0)
    direct = openai.OpenAI(base_url=llm_server.url + "/v1", api_key="x", max_retries=0)
    assert [m.id for m in gateway.models.list().data] == [m.id for m in direct.models.list().data]
    want = direct.chat.completions.create(**kw).choices[0].message.content
    assert gateway.chat.completions.create(**kw).choices[0].message.content == want
    chunks = list(gateway.chat.completions.create(**kw, stream=True,
                                                  stream_options={"include_usage": True}))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == want
    assert chunks[-1].usage.completion_tokens > 0


@pytest.mark.parametrize("body,status,code", [
    ({"messages": []}, 400, "invalid_value"),
    ({"messages": [{"role": "wizard", "content": "x"}]}, 400, "invalid_value"),
    ({"model": "nope", "messages": [{"role": "user", "content": "x"}]}, 404, "model_not_found"),
])
def test_gateway_bad_requests(chatbot: ServiceProcess, body: dict, status: int,
                              code: str) -> None:
    r = httpx.post(chatbot.url + "/v1/chat/completions", json=body, timeout=30)
    assert r.status_code == status and r.json()["error"]["code"] == code


def test_ui_limits(chatbot: ServiceProcess) -> None:
    r = httpx.post(chatbot.url + "/api/chat", json={"message": "x" * 9000}, timeout=30)
    assert r.status_code == 413 and r.json()["error"]["code"] == "message_too_long"
    r = httpx.post(chatbot.url + "/api/chat", content=b"{not json",
                   headers={"content-type": "application/json"}, timeout=30)
    assert r.status_code == 400 and r.json()["error"]["code"] == "invalid_json"
    page = httpx.get(chatbot.url + "/", timeout=30)
    assert "script-src 'self'" in page.headers["content-security-policy"]
    assert "unsafe-inline" not in page.headers["content-security-policy"]


def test_four_concurrent_streams_complete_in_full(chatbot: ServiceProcess,
                                                  llm_server: ServiceProcess) -> None:
    direct = openai.OpenAI(base_url=llm_server.url + "/v1", api_key="x", max_retries=0)
    want = direct.chat.completions.create(
        model="smollm2-135m-instruct", max_tokens=48, temperature=0,
        messages=[{"role": "user", "content": "Count from one to twenty in words."}])
    want_text = want.choices[0].message.content

    def one(i: int) -> tuple[str, str | None]:
        sdk = openai.OpenAI(base_url=chatbot.url + "/v1", api_key="x", max_retries=0)
        text, finish = "", None
        for chunk in sdk.chat.completions.create(
                model="smollm2-135m-instruct", stream=True, max_tokens=48, temperature=0,
                messages=[{"role": "user", "content": "Count from one to twenty in words."}]):
            for choice in chunk.choices:
                text += choice.delta.content or ""
                finish = choice.finish_reason or finish
        return text, finish

    with concurrent.futures.ThreadPoolExecutor(4) as pool:
        results = list(pool.map(one, range(4)))
    assert all(finish == want.choices[0].finish_reason for _, finish in results)
    # Each answer is the whole direct answer: nobody's stream was cut short or mixed.
    assert len(want_text) > 40
    assert [text for text, _ in results] == [want_text] * 4


def test_full_queue_answers_429(llm_server: ServiceProcess) -> None:
    # One answer at a time (not the 2 slots llmserver advertises): the next one must queue.
    env = chatbot_env(llm_server.url, CHATBOT_QUEUE_SIZE="1", CHATBOT_ANSWER_TOKENS="200",
                      CHATBOT_LLM_CONCURRENCY="1")
    body = {"model": "smollm2-135m-instruct", "max_tokens": 200, "stream": True,
            "messages": [{"role": "user", "content": "Write a long story about a dragon."}]}
    with ServiceProcess("chatbot", "CHATBOT_", env=env) as proc, \
            httpx.Client(base_url=proc.url, timeout=60) as client:
        with client.stream("POST", "/v1/chat/completions", json=body) as running:
            assert running.status_code == 200
            with httpx.Client(base_url=proc.url, timeout=60) as c2, \
                    c2.stream("POST", "/api/chat", json={"message": "hi"}) as waiting:
                assert waiting.status_code == 200  # queued, position 1
                lines = waiting.iter_lines()
                # The conversation is stored first, then the place in the queue is reported.
                assert next(line for line in lines if '"queued"' in line)
                extra = client.post("/v1/chat/completions", json={**body, "stream": False})
                assert extra.status_code == 429 and extra.headers["retry-after"]
                assert extra.json()["error"]["code"] == "queue_full"
                assert extra.json()["error"]["type"] == "rate_limit_error"
            # The waiting user went away: their place in the queue is freed at once.
            deadline = time.monotonic() + 5
            while waiting_count(client) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert waiting_count(client) == 0


def waiting_count(client: httpx.Client) -> int:
    status = client.get("/api/admin/status")
    assert status.status_code == 200, status.text
    return status.json()["queue"]["waiting"]


def test_llmserver_down_gives_503_fast_and_recovers(tmp_path) -> None:  # noqa: ANN001
    llm = ServiceProcess("llmserver", "LLMSERVER_", env={"LLMSERVER_MODELS_DIR": str(tmp_path)})
    with llm, ServiceProcess("chatbot", "CHATBOT_", env=chatbot_env(llm.url)) as bot, \
            httpx.Client(base_url=bot.url, timeout=60) as client:
        assert answer_of(chat_events(client, "Hi"))
        llm.stop()
        for url, body in (("/api/chat", {"message": "Hi again"}),
                          ("/v1/chat/completions",
                           {"messages": [{"role": "user", "content": "Hi"}]})):
            start = time.monotonic()
            r = client.post(url, json=body)
            assert time.monotonic() - start < 2
            if r.status_code == 200:  # the browser chat found out inside its stream
                assert url == "/api/chat" and "event: error" in r.text
                error = json.loads(r.text.split("event: error")[1].split("data:")[1]
                                   .split("\n")[0])
                assert error["status"] == 503
            else:  # marked down already: refused before any stream starts
                assert r.status_code == 503 and r.headers["retry-after"]
                error = r.json()
            assert error["error"]["code"] == "upstream_unavailable"
        health = client.get("/health")
        assert health.status_code == 503 and health.json() == {"status": "unavailable"}
        llm.start()
        time.sleep(1.1)  # CHATBOT_RETRY_DOWN_S
        assert answer_of(chat_events(client, "Hi again"))
        assert client.get("/health").json() == {"status": "ok"}
