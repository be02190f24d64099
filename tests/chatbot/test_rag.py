"""Answers with sources and the documents page, through the chatbot, on a real rag service."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.chatbot.conftest import chatbot_env
from tests.utils.procs import ServiceProcess

pytestmark = pytest.mark.slow
CHROMIUM = Path("/usr/bin/chromium")
FACT = ("Glimmerfjord harbour notes. The lighthouse of Glimmerfjord was painted violet in 1987 "
        "and its lamp can be seen from forty kilometres away.\n\n"
        "Fishing boats leave the harbour at dawn and return before noon.")


@pytest.fixture(scope="module")
def stack(llm_server: ServiceProcess, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[ServiceProcess]:
    data = tmp_path_factory.mktemp("chatbot-rag")
    with ServiceProcess("rag", "RAG_", env={"RAG_DATA_DIR": str(data), "QDRANT_URL": ""},
                        health_timeout=180) as rag, \
            ServiceProcess("chatbot", "CHATBOT_", env=chatbot_env(
                llm_server.url, CHATBOT_RAG_URL=rag.url)) as bot:
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
        assert all(isinstance(s["cited"], bool) for s in sources)
        assert isinstance(answer["invalid_citations"], list)
        lines = []
        with client.stream("POST", "/v1/chat/completions", json={**body, "stream": True}) as r:
            lines = [line[5:].strip() for line in r.iter_lines() if line.startswith("data:")]
        assert lines[-1] == "[DONE]"
        assert json.loads(lines[-2])["sources"][0]["document"] == "glimmerfjord.txt"

        # The browser chat gets the same sources as an event.
        client.patch("/api/session", json={"collection": "harbour"})
        with client.stream("POST", "/api/chat", json={"message": "When was the lighthouse "
                                                      "painted violet?"}) as r:
            text = r.read().decode()
        assert "event: sources" in text and "glimmerfjord.txt" in text

        doc_id = docs[0]["id"]
        assert client.delete(f"/api/collections/harbour/documents/{doc_id}").status_code == 200
        assert client.get("/api/collections/harbour/documents").json()["data"] == []


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
        page.select_option("#collection", "pagecol")
        page.wait_for_timeout(300)  # the PATCH that stores the choice
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
