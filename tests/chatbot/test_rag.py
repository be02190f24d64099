"""Answers with sources and the documents page, through the chatbot, on a real rag service."""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.chatbot.conftest import chat_events, chatbot_env
from tests.chatbot.fake_llm import fake_llm
from tests.utils.procs import ServiceProcess

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
FACT = ("Glimmerfjord harbour notes. The lighthouse of Glimmerfjord was painted violet in 1987 "
        "and its lamp can be seen from forty kilometres away.\n\n"
        "Fishing boats leave the harbour at dawn and return before noon.")


@pytest.fixture(scope="module")
def rag_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    data = tmp_path_factory.mktemp("chatbot-rag")
    with ServiceProcess("rag", "RAG_", env={"RAG_DATA_DIR": str(data), "QDRANT_URL": ""},
                        health_timeout=180) as rag:
        yield rag


@pytest.fixture(scope="module")
def stack(llm_server: ServiceProcess, rag_service: ServiceProcess) -> Iterator[ServiceProcess]:
    with ServiceProcess("chatbot", "CHATBOT_", env=chatbot_env(
            llm_server.url, CHATBOT_RAG_URL=rag_service.url)) as bot:
        yield bot


def upload(client: httpx.Client, collection: str, name: str, text: str) -> dict:
    """Upload through the chatbot's proxy (a background job) and wait for it."""
    r = client.post(f"/api/collections/{collection}/documents",
                    files={"files": (name, text.encode(), "text/plain")})
    assert r.status_code == 202, r.text
    job = r.json()["job"]
    deadline = time.monotonic() + 120
    while job["status"] not in ("done", "failed") and time.monotonic() < deadline:
        time.sleep(0.3)
        job = client.get(f"/api/jobs/{job['id']}").json()
    assert job["status"] == "done", job
    return job


def test_documents_proxy_and_answers_with_checked_sources(stack: ServiceProcess) -> None:
    with httpx.Client(base_url=stack.url, timeout=120) as client:
        assert client.post("/api/collections", json={"name": "harbour"}).status_code == 200
        job = upload(client, "harbour", "glimmerfjord.txt", FACT)
        assert job["documents"][0]["chunks"] >= 1
        docs = client.get("/api/collections/harbour/documents").json()["data"]
        assert [d["name"] for d in docs] == ["glimmerfjord.txt"]
        r = client.post("/api/collections/harbour/documents", content=b"x",
                        headers={"content-type": "text/plain"})
        assert r.status_code == 415 and r.json()["error"]["code"] == "unsupported_media_type"
        r = client.get("/api/collections/nope-nope/documents")
        assert r.status_code == 404 and r.json()["error"]["type"] == "not_found_error"

        body = {"model": "smollm2-135m-instruct", "max_tokens": 48, "collection": "harbour",
                "messages": [{"role": "user", "content": "What colour is the lighthouse of "
                                                         "Glimmerfjord?"}]}
        answer = client.post("/v1/chat/completions", json=body).json()
        sources = answer["sources"]
        assert sources[0]["document"] == "glimmerfjord.txt" and "violet" in sources[0]["snippet"]
        # Whatever the model wrote, every citation left names a retrieved source, and the
        # sources marked cited are exactly those.
        left = {int(n) for n in re.findall(r"\[(\d+)\]", answer["choices"][0]["message"]
                                           ["content"])}
        assert all(1 <= n <= len(sources) for n in left)
        assert {s["n"] for s in sources if s["cited"]} == left
        assert all(n > len(sources) or n < 1 for n in answer["invalid_citations"])
        lines = []
        with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
            lines = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
        assert lines[-1] == "[DONE]"
        assert json.loads(lines[-2])["sources"][0]["document"] == "glimmerfjord.txt"

        # The browser chat gets the same sources as an event, and stores them.
        events = chat_events(client, "When was the lighthouse painted violet?",
                             collection="harbour")
        got = next(data for name, data in events if name == "sources")
        assert got["sources"][0]["document"] == "glimmerfjord.txt"
        cid = next(data["id"] for name, data in events if name == "conversation")
        stored = client.get(f"/api/conversations/{cid}").json()
        assert stored["collection"] == "harbour"
        assert stored["messages"][1]["sources"][0]["document"] == "glimmerfjord.txt"
        assert stored["messages"][1]["content"] == got["text"]

        doc_id = docs[0]["id"]
        assert client.delete(f"/api/collections/harbour/documents/{doc_id}").status_code == 200
        assert client.get("/api/collections/harbour/documents").json()["data"] == []


CITES_7 = "The lighthouse is violet [1], as the harbour notes say [7]."


def test_a_citation_to_a_chunk_not_retrieved_is_removed_and_listed(
        rag_service: ServiceProcess) -> None:
    """A scripted upstream cites [7] while one source was retrieved: [7] goes, [1] stays."""
    with fake_llm(CITES_7) as llm, ServiceProcess("chatbot", "CHATBOT_", env=chatbot_env(
            llm, CHATBOT_RAG_URL=rag_service.url, CHATBOT_RAG_K="1",
            CHATBOT_DEFAULT_MODEL="scripted")) as bot, \
            httpx.Client(base_url=bot.url, timeout=120) as client:
        assert client.post("/api/collections", json={"name": "cites"}).status_code == 200
        upload(client, "cites", "glimmerfjord.txt", FACT)
        body = {"messages": [{"role": "user", "content": "What colour is the lighthouse?"}],
                "collections": ["cites"]}
        answer = client.post("/v1/chat/completions", json=body).json()
        assert answer["choices"][0]["message"]["content"] == \
            "The lighthouse is violet [1], as the harbour notes say."
        assert answer["invalid_citations"] == [7]
        assert [(s["n"], s["cited"]) for s in answer["sources"]] == [(1, True)]
        # `collection` (one) means the same as `collections` (a list).
        same = client.post("/v1/chat/completions", json={**body, "collections": None,
                                                         "collection": "cites"}).json()
        assert same["invalid_citations"] == [7] and same["sources"] == answer["sources"]
        with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
            lines = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
        assert lines[-1] == "[DONE]"
        last = json.loads(lines[-2])
        assert last["invalid_citations"] == [7] and last["sources"][0]["cited"] is True
        # The browser chat: the cleaned text in the sources event and in the stored answer.
        events = chat_events(client, "What colour is the lighthouse?", collection="cites")
        got = next(data for name, data in events if name == "sources")
        assert got["text"] == "The lighthouse is violet [1], as the harbour notes say."
        assert got["invalid"] == [7] and got["cited"] == [1]
        cid = next(data["id"] for name, data in events if name == "conversation")
        stored = client.get(f"/api/conversations/{cid}").json()["messages"][1]
        assert stored["content"] == got["text"]
        assert stored["meta"]["invalid_citations"] == [7]
        assert client.delete("/api/collections/cites").status_code == 200


@pytest.mark.browser
def test_documents_page_upload_list_delete_then_ask(stack: ServiceProcess, tmp_path: Path,
                                                    artifacts_dir: Path) -> None:
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed")
    sync_api = pytest.importorskip("playwright.sync_api")
    expect = sync_api.expect
    doc = tmp_path / "lighthouse-notes.txt"
    doc.write_text(FACT)
    with sync_api.sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=str(CHROMIUM), args=[
            "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"])
        page = browser.new_page()
        page.goto(stack.url + "/documents")
        page.fill("#collection-name", "pagecol")
        page.click("#new-collection button")
        expect(page.locator("#collection")).to_have_value("pagecol", timeout=30_000)
        page.set_input_files("#files", str(doc))
        page.click("#upload-button")
        expect(page.locator("#status")).to_contain_text("uploaded lighthouse-notes.txt",
                                                        timeout=120_000)
        assert page.eval_on_selector("#job-progress", "p => p.value") == 1
        expect(page.locator("#documents td.name")).to_have_text(["lighthouse-notes.txt"])
        page.screenshot(path=str(artifacts_dir / "chatbot-documents.png"), full_page=True)

        page.goto(stack.url + "/")
        expect(page.locator("#collection option[value=pagecol]")).to_be_attached(timeout=30_000)
        page.wait_for_selector("body[data-ready]")
        page.select_option("#collection", "pagecol")
        page.fill("#input", "What colour is the lighthouse?")
        page.press("#input", "Enter")
        expect(page.locator(".message.assistant .sources li").first).to_contain_text(
            "lighthouse-notes.txt", timeout=120_000)
        page.screenshot(path=str(artifacts_dir / "chatbot-sources.png"), full_page=True)

        page.goto(stack.url + "/documents")
        page.select_option("#collection", "pagecol")
        expect(page.locator("#documents td.name")).to_have_count(1, timeout=30_000)
        page.click("#documents button.delete")
        expect(page.locator("#documents td.name")).to_have_count(0, timeout=30_000)
        browser.close()
