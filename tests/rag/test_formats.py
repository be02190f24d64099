"""Every supported format, made by the tests with real libraries, extracted and searchable."""

from __future__ import annotations

import pytest

from .docs import CORPUS, QUESTIONS, make_docx, make_pdf
from .helpers import upload


def search(client, collection: str, query: str, k: int = 3, **body) -> list[dict]:
    response = client.post("/search", json={"query": query, "collections": [collection], "k": k,
                                            **body})
    assert response.status_code == 200, response.text
    return response.json()["results"]


@pytest.mark.parametrize("name,data,query,expect", [
    ("notes.txt", b"The lighthouse keeper polished the brass lamp every evening.",
     "who polished the lamp", "lighthouse keeper"),
    ("readme.md", b"# Setup\n\nRun the **installer** and choose the copper theme.",
     "which theme to choose", "copper theme"),
    ("page.html", b"<!DOCTYPE html><html><body><script>alert(1)</script><p>Giraffes sleep "
                  b"only two hours a day.</p></body></html>", "how long do giraffes sleep",
     "Giraffes sleep"),
    ("latin1.txt", "Caf\xe9 cr\xe8me served at the na\xefve bistro.".encode("latin-1"),
     "coffee at the bistro", "Café crème"),
    ("report.docx", make_docx(["Quarterly revenue grew by twelve percent."],
                              [["Region", "Sales"], ["Nordic", "4200 units"]]),
     "How did revenue change this quarter", "twelve percent"),
])
def test_each_format_is_extracted_and_found(client, collection, name, data, query, expect):
    response = upload(client, collection, (name, data))
    assert response.status_code == 200, response.text
    doc = response.json()["documents"][0]
    assert doc["name"] == name and doc["chunks"] >= 1 and doc["bytes"] == len(data)
    hits = search(client, collection, query, k=1)
    assert expect in hits[0]["text"]
    assert hits[0]["document"] == name and hits[0]["document_id"] == doc["id"]
    assert "alert(1)" not in hits[0]["text"]


def test_docx_table_cells_are_extracted(client, collection):
    data = make_docx(["Inventory."], [["Item", "Count"], ["Widgets", "917"]])
    upload(client, collection, ("inv.docx", data))
    hits = search(client, collection, "how many widgets", k=1)
    assert "Widgets" in hits[0]["text"] and "917" in hits[0]["text"]


def test_pdf_short_pages_share_a_chunk_with_its_first_page(client, collection):
    pages = ["Introduction to the ledger system.",
             "Penguins huddle together to survive the Antarctic winter.",
             "Appendix: the harbor timetable lists ferries every forty minutes."]
    response = upload(client, collection, ("book.pdf", make_pdf(pages)))
    assert response.status_code == 200, response.text
    hits = search(client, collection, "How do penguins survive the cold?", k=3)
    assert hits[0]["document"] == "book.pdf" and hits[0]["page"] == 1
    assert "Penguins huddle" in hits[0]["text"]
    assert hits[0]["start"] == 0 and hits[0]["end"] > hits[0]["start"]
    assert search(client, collection, "penguins", filter={"page": {"gte": 2}}) == []


def test_pdf_pages_are_attributed_per_chunk(client, collection, embedder):
    # Pages long enough for one chunk each, so each chunk starts on its own page.
    filler = "The quarry workers measured granite blocks all afternoon. " * 40
    pages = [filler + "Keyword alpha.", filler + "The owl named Hermes lives in the bell tower.",
             filler + "Keyword gamma."]
    upload(client, collection, ("long.pdf", make_pdf(pages)))
    hits = search(client, collection, "owl Hermes bell tower", k=10)
    owl = [h for h in hits if "Hermes" in h["text"]]
    assert owl and all(h["page"] in (2, 3) for h in owl)
    assert {h["page"] for h in hits} <= {1, 2, 3}
    assert any(h["page"] == 2 for h in owl)


def test_recall_at_3_on_labelled_questions(client, collection):
    response = upload(client, collection, *[(n, t.encode()) for n, t in CORPUS.items()])
    assert response.status_code == 200, response.text
    found = 0
    for question, expected in QUESTIONS:
        names = [h["document"] for h in search(client, collection, question, k=3)]
        found += expected in names
    recall = found / len(QUESTIONS)
    assert recall >= 0.9, recall


def test_search_across_collections_and_filters(client, collection):
    other = collection + "-b"
    upload(client, collection, ("tides.txt", CORPUS["tides.txt"].encode()))
    upload(client, other, ("bread.md", CORPUS["bread.md"].encode()),
           ("python.md", CORPUS["python.md"].encode()))
    hits = client.post("/search", json={"query": "sourdough starter",
                                        "collections": [collection, other], "k": 5,
                                        }).json()["results"]
    assert hits[0]["collection"] == other and hits[0]["document"] == "bread.md"
    assert hits == sorted(hits, key=lambda h: -h["score"])
    only = client.post("/search", json={"query": "sourdough starter", "collections": [other],
                                        "filter": {"document": "python.md"}}).json()["results"]
    assert only and all(h["document"] == "python.md" for h in only)
