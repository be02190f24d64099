"""The chatbot's store on SQLite and on PostgreSQL alike: migrations, turns, edit and
regenerate, search, leases, per-user isolation, cascades."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import inspect

from chatbot.store import api_keys, conversations, logins, responses, users
from chatbot.store.db import Database
from services.errors import APIError


@pytest.fixture()
def db(db_url: str):  # noqa: ANN201
    database = Database(db_url)
    database.migrate()
    database.migrate()  # a second start finds the schema current
    yield database
    database.close()


def turn(db: Database, user_id: int, cid: str | None, text: str | None, answer: str,
         status: str = "complete", **kw) -> str:  # noqa: ANN003
    begun = db.call(lambda s: conversations.begin_turn(
        s, user_id, cid, text, model="m", collection=None, lease_s=10, max_messages=50, **kw))
    db.call(lambda s: conversations.finish_turn(s, begun.conversation.id, begun.answer_id,
                                                answer, status, None, {}))
    return begun.conversation.id


def test_schema_and_a_conversation(db: Database) -> None:
    tables = set(inspect(db.engine).get_table_names())
    assert {"users", "login_sessions", "api_keys", "conversations", "messages",
            "search_words", "alembic_version"} <= tables
    alice = db.call(lambda s: users.create(s, "alice", "h", is_admin=True))
    bob = db.call(lambda s: users.create(s, "bob", "h"))
    cid = turn(db, alice.id, None, "Tell me about lighthouses in Norway", "They guide ships.")
    turn(db, alice.id, cid, "And their colours?", "Often red and white.")
    conv = db.call(lambda s: conversations.get(s, alice.id, cid))
    assert conv.title == "Tell me about lighthouses in Norway"
    msgs = db.call(lambda s: conversations.messages(s, conv))
    assert [(m.role, m.content, m.status) for m in msgs] == [
        ("user", "Tell me about lighthouses in Norway", "complete"),
        ("assistant", "They guide ships.", "complete"),
        ("user", "And their colours?", "complete"),
        ("assistant", "Often red and white.", "complete")]
    assert db.call(lambda s: conversations.get(s, bob.id, cid)) is None  # not bob's
    with pytest.raises(APIError) as err:
        turn(db, bob.id, cid, "hijack", "x")
    assert err.value.status == 404


def test_edit_and_regenerate_replace_what_follows(db: Database) -> None:
    uid = db.call(lambda s: users.create(s, "u", "h")).id
    cid = turn(db, uid, None, "first question", "first answer")
    turn(db, uid, cid, "second question", "second answer")
    conv = db.call(lambda s: conversations.get(s, uid, cid))
    first_id = db.call(lambda s: conversations.messages(s, conv))[0].id
    begun = db.call(lambda s: conversations.begin_turn(
        s, uid, cid, None, model="m", collection=None, lease_s=10, max_messages=50))
    assert begun.history == [{"role": "user", "content": "first question"},
                             {"role": "assistant", "content": "first answer"},
                             {"role": "user", "content": "second question"}]
    db.call(lambda s: conversations.finish_turn(s, cid, begun.answer_id, "again", "complete",
                                                None, {}))
    msgs = db.call(lambda s: conversations.messages(s, conv))
    assert [m.content for m in msgs] == ["first question", "first answer", "second question",
                                         "again"]
    turn(db, uid, cid, "edited question", "edited answer", edit_id=first_id)
    msgs = db.call(lambda s: conversations.messages(s, conv))
    assert [m.content for m in msgs] == ["edited question", "edited answer"]
    conv = db.call(lambda s: conversations.get(s, uid, cid))
    assert conv.title == "edited question"
    # The search index forgets removed text.
    assert db.call(lambda s: conversations.listing(s, uid, "second")) == []
    assert [c.id for c in db.call(lambda s: conversations.listing(s, uid, "edit"))] == [cid]


def test_listing_newest_first_and_search_by_word_prefix(db: Database) -> None:
    uid = db.call(lambda s: users.create(s, "u", "h")).id
    other = db.call(lambda s: users.create(s, "o", "h")).id
    ids = []
    for text in ("Pasta recipes", "Quantum physics", "Python generators"):
        ids.append(turn(db, uid, None, text, "answer about " + text.lower()))
        time.sleep(0.01)
    turn(db, other, None, "Python for the other user", "no")
    assert [c.id for c in db.call(lambda s: conversations.listing(s, uid))] == ids[::-1]
    found = db.call(lambda s: conversations.listing(s, uid, "PYTH"))
    assert [c.id for c in found] == [ids[2]]
    assert [c.id for c in db.call(lambda s: conversations.listing(s, uid, "answer qua"))] == \
        [ids[1]]
    assert db.call(lambda s: conversations.listing(s, uid, "nothing-like-this")) == []
    db.call(lambda s: conversations.update_fields(s, conversations.get(s, uid, ids[0]),
                                                  title="Zebra notes"))
    assert [c.id for c in db.call(lambda s: conversations.listing(s, uid, "zeb"))] == [ids[0]]
    turn(db, uid, ids[0], "more", "more")  # a new turn moves it to the top
    assert db.call(lambda s: conversations.listing(s, uid))[0].id == ids[0]
    assert db.call(lambda s: conversations.get(s, uid, ids[0])).title == "Zebra notes"


def test_lease_blocks_a_second_answer_and_a_dead_writer_reads_as_interrupted(
        db: Database) -> None:
    uid = db.call(lambda s: users.create(s, "u", "h")).id
    begun = db.call(lambda s: conversations.begin_turn(
        s, uid, None, "q", model="m", collection=None, lease_s=0.5, max_messages=50))
    cid = begun.conversation.id
    db.call(lambda s: conversations.save_partial(s, cid, begun.answer_id, "partial ans", 0.5))
    with pytest.raises(APIError) as err:
        db.call(lambda s: conversations.begin_turn(
            s, uid, cid, "again", model="m", collection=None, lease_s=0.5, max_messages=50))
    assert err.value.status == 409 and err.value.code == "answer_in_progress"
    conv = db.call(lambda s: conversations.get(s, uid, cid))
    assert db.call(lambda s: conversations.messages(s, conv))[-1].status == "streaming"
    time.sleep(0.6)  # the writer died: nobody renews the lease
    last = db.call(lambda s: conversations.messages(s, conv))[-1]
    assert (last.status, last.content) == ("interrupted", "partial ans")
    turn(db, uid, cid, "next", "fine")  # the conversation is free again


def test_deleting_a_user_removes_everything_of_theirs(db: Database) -> None:
    user = db.call(lambda s: users.create(s, "gone", "h"))
    cid = turn(db, user.id, None, "secret plans", "noted")
    db.call(lambda s: logins.create(s, "t" * 64, user.id, 60))
    db.call(lambda s: api_keys.create(s, user.id, "k", "d" * 64, "tk-"))
    owner = f"user:{user.id}"
    db.call(lambda s: responses.save(s, owner, [{"role": "user", "content": "plans"}],
                                     {"id": "resp_1", "output": []}))
    assert db.call(lambda s: responses.get(s, owner, "resp_1")).messages[0]["content"] == "plans"
    assert db.call(lambda s: responses.get(s, "service-key", "resp_1")) is None  # not theirs
    assert db.call(lambda s: logins.user_for(s, "t" * 64, 60)).username == "gone"
    db.call(lambda s: users.delete(s, users.by_id(s, user.id)))
    assert db.call(lambda s: logins.user_for(s, "t" * 64, 60)) is None
    assert db.call(lambda s: api_keys.user_for(s, "d" * 64)) is None
    assert db.call(lambda s: conversations.get(s, user.id, cid)) is None
    assert db.call(lambda s: conversations.listing(s, user.id, "secret")) == []
    assert db.call(lambda s: responses.get(s, owner, "resp_1")) is None


def test_login_sessions_expire(db: Database) -> None:
    user = db.call(lambda s: users.create(s, "u", "h"))
    db.call(lambda s: logins.create(s, "a" * 64, user.id, 0.2))
    assert db.call(lambda s: logins.user_for(s, "a" * 64, 0.2)) is not None
    time.sleep(0.3)
    assert db.call(lambda s: logins.user_for(s, "a" * 64, 0.2)) is None
