"""Files in a conversation: small ones go into the prompt whole, large ones are indexed in a
rag collection of that conversation alone (real rag), deleted with the conversation and with
its user (refused while rag is down); the Attach button and drag and drop in a real
Chromium."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.chatbot.conftest import PASSWORD, chat_events, chatbot_env, dead_url, login
from tests.chatbot.fake_llm import fake_llm
from tests.chatbot.test_browser import VIEWPORTS, chromium, new_page, send  # noqa: F401
from tests.chatbot.test_rag import rag_service  # noqa: F401
from tests.rag.docs import make_pdf
from tests.utils.procs import ServiceProcess

NOTE = "Shopping note: the turnip stall opens at 7 am; ask for Griselda."
LONG = " ".join(f"Paragraph {i}: the Quillton archive lists event number {i} in its ledger."
                for i in range(60)) + " The secret archive password is heliotrope."


@pytest.fixture(scope="module")
def scripted() -> Iterator[tuple[ServiceProcess, dict]]:
    stats: dict = {}
    with fake_llm("Scripted.", stats=stats) as llm, ServiceProcess(
            "chatbot", "CHATBOT_", env=chatbot_env(
            llm, CHATBOT_DEFAULT_MODEL="scripted")) as bot:
        yield bot, stats


def attach(client: httpx.Client, name: str, data: bytes, ctype: str = "text/plain",
           conversation_id: str | None = None) -> httpx.Response:
    form = {"conversation_id": conversation_id} if conversation_id else {}
    return client.post("/api/attachments", files={"file": (name, data, ctype)}, data=form)


def test_small_files_go_into_the_prompt(scripted) -> None:  # noqa: ANN001
    bot, stats = scripted
    with httpx.Client(base_url=bot.url, timeout=60) as client:
        r = attach(client, "note.txt", NOTE.encode())
        assert r.status_code == 201, r.text
        cid = r.json()["conversation_id"]
        assert r.json()["attachment"] == {**r.json()["attachment"], "name": "note.txt",
                                          "kind": "text", "indexed": False}
        conv = client.get(f"/api/conversations/{cid}").json()
        assert conv["title"] == "note.txt" and conv["messages"] == []
        r = attach(client, "census.pdf", make_pdf(["Marmots counted: 412."]), "application/pdf",
                   conversation_id=cid)
        assert r.status_code == 201 and r.json()["attachment"]["kind"] == "pdf"
        listed = client.get(f"/api/attachments?conversation_id={cid}").json()["data"]
        assert [a["name"] for a in listed] == ["note.txt", "census.pdf"]
        chat_events(client, "When does the stall open?", conversation_id=cid)
        system = stats["requests"][-1]["messages"][0]["content"]
        assert f"<<<FILE note.txt\n{NOTE}\nFILE>>>" in system
        assert "Marmots counted: 412." in system and "untrusted" in system
        # Another conversation does not see them.
        chat_events(client, "Hello")
        assert NOTE not in stats["requests"][-1]["messages"][0]["content"]
        # Bad input: a clear error, nothing stored.
        r = attach(client, "x.txt", b"", conversation_id=cid)
        assert r.status_code == 400 and r.json()["error"]["code"] == "empty_file"
        r = attach(client, "x.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png",
                   conversation_id=cid)
        assert r.status_code == 415, r.text
        r = attach(client, "x.txt", b"hi", conversation_id="f" * 32)
        assert r.status_code == 404 and r.json()["error"]["code"] == "conversation_not_found"
        assert len(client.get(f"/api/attachments?conversation_id={cid}").json()["data"]) == 2
        r = client.post("/api/attachments", json={"file": "x"})
        assert r.status_code == 415  # JSON where a multipart upload belongs
        before = len(client.get("/api/conversations").json()["data"])
        r = attach(client, "x.png", b"\x89PNG\r\n\x1a\n" + b"\0" * 64, "image/png")
        assert r.status_code == 415
        assert len(client.get("/api/conversations").json()["data"]) == before  # none created


@pytest.mark.slow
def test_large_files_are_indexed_for_that_conversation_only(
        rag_service) -> None:  # noqa: ANN001, F811
    stats: dict = {}
    with fake_llm("Scripted.", stats=stats) as llm, ServiceProcess(
            "chatbot", "CHATBOT_", env=chatbot_env(
            llm, CHATBOT_DEFAULT_MODEL="scripted", CHATBOT_RAG_URL=rag_service.url,
            CHATBOT_ATTACH_INLINE_CHARS="500")) as bot, \
            httpx.Client(base_url=bot.url, timeout=300) as client:
        r = attach(client, "archive.txt", LONG.encode())
        assert r.status_code == 201, r.text
        cid = r.json()["conversation_id"]
        assert r.json()["attachment"]["indexed"] is True
        names = [c["name"] for c in httpx.get(rag_service.url + "/collections").json()["data"]]
        assert f"conv-{cid}" in names
        events = chat_events(client, "What is the secret archive password?", conversation_id=cid)
        system = stats["requests"][-1]["messages"][0]["content"]
        assert "heliotrope" in system and "<<<SOURCES" in system
        assert any(n == "sources" for n, _ in events)
        assert "heliotrope" not in system.split("<<<SOURCES")[0]  # not inline: retrieved
        assert client.delete(f"/api/conversations/{cid}").status_code == 200
        names = [c["name"] for c in httpx.get(rag_service.url + "/collections").json()["data"]]
        assert f"conv-{cid}" not in names


@contextmanager
def accounts_bot(rag_url: str, db: str) -> Iterator[tuple[ServiceProcess, httpx.Client]]:
    """A chatbot with accounts on database `db` and the admin's client, logged in."""
    with fake_llm("Scripted.") as llm, ServiceProcess("chatbot", "CHATBOT_", env=chatbot_env(
            llm, CHATBOT_AUTH="accounts", CHATBOT_RAG_URL=rag_url, CHATBOT_DATABASE_URL=db,
            CHATBOT_ATTACH_INLINE_CHARS="500")) as bot, \
            httpx.Client(base_url=bot.url, timeout=300) as admin:
        first = admin.get("/api/auth/state").json()["setup_needed"]
        login(admin, "admin", route="setup" if first else "login")
        yield bot, admin


def indexed_by(bot: ServiceProcess, admin: httpx.Client, username: str) -> tuple[int, str]:
    """A new user with one indexed file: their id and its rag collection."""
    r = admin.post("/api/admin/users", json={"username": username, "password": PASSWORD})
    assert r.status_code == 201, r.text
    user_id = r.json()["id"]
    with httpx.Client(base_url=bot.url, timeout=300) as client:
        login(client, username)
        r = attach(client, "archive.txt", LONG.encode())
        assert r.status_code == 201 and r.json()["attachment"]["indexed"] is True, r.text
    return user_id, "conv-" + r.json()["conversation_id"]


def collection_status(rag_url: str, name: str) -> tuple[int, str | None]:
    r = httpx.get(f"{rag_url}/collections/{name}")
    return r.status_code, (r.json().get("error") or {}).get("code")


@pytest.mark.slow
def test_deleting_a_user_deletes_their_attached_files_only(
        rag_service, tmp_path) -> None:  # noqa: ANN001, F811
    with accounts_bot(rag_service.url, f"sqlite:///{tmp_path}/c.db") as (bot, admin):
        alice, alices = indexed_by(bot, admin, "alice")
        bob, bobs = indexed_by(bot, admin, "bob")
        assert admin.delete(f"/api/admin/users/{alice}").status_code == 200
        assert collection_status(rag_service.url, alices) == (404, "collection_not_found")
        r = httpx.post(rag_service.url + "/search",
                       json={"query": "secret archive password", "collections": [alices]})
        assert r.status_code == 404 and r.json()["error"]["code"] == "collection_not_found"
        assert collection_status(rag_service.url, bobs) == (200, None)
        r = httpx.post(rag_service.url + "/search",
                       json={"query": "secret archive password", "collections": [bobs]})
        assert "heliotrope" in r.text
        assert [u["id"] for u in admin.get("/api/admin/users").json()["data"]].count(bob) == 1


@pytest.mark.slow
def test_deletions_are_refused_whole_while_rag_is_down(
        rag_service, tmp_path) -> None:  # noqa: ANN001, F811
    db = f"sqlite:///{tmp_path}/c.db"
    with accounts_bot(rag_service.url, db) as (bot, admin):
        carol, carols = indexed_by(bot, admin, "carol")
    cid = carols.removeprefix("conv-")
    with accounts_bot(dead_url(), db) as (bot, admin), \
            httpx.Client(base_url=bot.url, timeout=60) as carol_client:
        login(carol_client, "carol")
        for client, path in ((admin, f"/api/admin/users/{carol}"),
                             (carol_client, f"/api/conversations/{cid}")):
            r = client.delete(path)
            assert r.status_code == 503, r.text
            assert r.json()["error"]["code"] == "rag_unavailable"
        # Nothing deleted: carol, her conversation and its file are all still there.
        assert carol in [u["id"] for u in admin.get("/api/admin/users").json()["data"]]
        assert carol_client.get(f"/api/conversations/{cid}").status_code == 200
        assert len(carol_client.get(f"/api/attachments?conversation_id={cid}").json()[
            "data"]) == 1
        assert collection_status(rag_service.url, carols) == (200, None)
    with accounts_bot(rag_service.url, db) as (bot, admin):  # rag back: the retry works
        assert admin.delete(f"/api/admin/users/{carol}").status_code == 200
        assert collection_status(rag_service.url, carols) == (404, "collection_not_found")


DROP = """([name, text]) => {
  const transfer = new DataTransfer();
  transfer.items.add(new File([text], name, { type: "text/plain" }));
  const pane = document.querySelector(".pane");
  const init = { dataTransfer: transfer, bubbles: true, cancelable: true };
  pane.dispatchEvent(new DragEvent("dragover", init));
  pane.dispatchEvent(new DragEvent("drop", init));
}"""


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.parametrize("viewport", list(VIEWPORTS))
def test_attach_by_button_and_by_drag_and_drop(
        scripted, chromium, viewport: str, tmp_path) -> None:  # noqa: ANN001, F811
    from playwright.sync_api import expect
    bot, stats = scripted
    page = new_page(chromium, viewport)
    page.goto(bot.url + "/")
    page.wait_for_selector("body[data-ready]")
    expect(page.locator("#attach")).to_be_visible()
    path = tmp_path / "note.txt"
    path.write_text(NOTE)
    page.set_input_files("#attach-file", str(path))
    expect(page.locator("#attachments li")).to_have_text(["note.txt"])
    expect(page.locator("#status")).to_have_text("attached note.txt")
    expect(page.locator("#conv-title")).to_have_text("note.txt")
    page.evaluate(DROP, ["dropped.txt", "Dropped text: the bridge is Turnip Crossing."])
    expect(page.locator("#attachments li")).to_have_text(["note.txt", "dropped.txt"])
    send(page, "What do my files say?")
    system = stats["requests"][-1]["messages"][0]["content"]
    assert NOTE in system and "Turnip Crossing" in system
    page.reload()
    page.wait_for_selector("body[data-ready]")
    expect(page.locator("#attachments li")).to_have_count(2)
    page.click("#new-chat")
    expect(page.locator("#attachments")).to_be_hidden()


def test_conversation_collections_are_not_reachable_by_name(scripted) -> None:  # noqa: ANN001
    bot, stats = scripted
    name = "conv-" + "a" * 32
    before = len(stats["requests"])
    with httpx.Client(base_url=bot.url, timeout=60) as client:
        r = client.post("/api/chat", json={"message": "hi", "collection": name})
        assert r.status_code == 404 and r.json()["error"]["code"] == "collection_not_found"
        for method, path in (("GET", f"/api/collections/{name}/documents"),
                             ("DELETE", f"/api/collections/{name}")):
            r = client.request(method, path)
            assert r.status_code == 404 and r.json()["error"]["code"] == "collection_not_found"
        r = client.post("/v1/chat/completions", json={
            "model": "scripted", "collection": name,
            "messages": [{"role": "user", "content": "hi"}]})
        assert r.status_code == 404 and r.json()["error"]["code"] == "collection_not_found"
    assert len(stats["requests"]) == before
