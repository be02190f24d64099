"""Every bad input answers its status and envelope code, and nothing bad reaches the disk."""

from __future__ import annotations

import os

import pytest

from .docs import docx_bomb, make_docx, make_pdf, pdf_bomb
from .helpers import assert_error, upload

PNG = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\rIHDR" + os.urandom(200)


def zip_archive() -> bytes:
    import io
    import zipfile

    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        archive.writestr("notes.txt", "hello")
    return out.getvalue()


@pytest.mark.parametrize("name,data,status,code", [
    ("image.txt", PNG, 415, "unsupported_media_type"),
    ("archive.docx", zip_archive(), 415, "unsupported_media_type"),
    ("nul.txt", b"text with a \x00 NUL inside", 415, "unsupported_media_type"),
    ("controls.txt", bytes(range(1, 32)) * 50, 415, "unsupported_media_type"),
    ("empty.txt", b"", 422, "no_text"),
    ("blank.md", b"   \n\n\t  ", 422, "no_text"),
    ("blank.pdf", make_pdf([""]), 422, "no_text"),
    ("empty.docx", make_docx([]), 422, "no_text"),
    ("broken.pdf", b"%PDF-1.4\n1 0 obj garbage", 422, "corrupt_document"),
    ("broken.docx", b"PK\x03\x04" + os.urandom(100), 422, "corrupt_document"),
    ("bomb.docx", docx_bomb(20_000_000), 413, "decompression_bomb"),
    ("pages.pdf", make_pdf(["x"] * 60), 413, "too_many_pages"),
])
def test_bad_documents(client, collection, name, data, status, code):
    err = assert_error(upload(client, collection, (name, data)), status, code)
    assert err["param"] == "files"
    assert_error(client.get(f"/collections/{collection}/documents"), 404,
                 "collection_not_found")


def test_pdf_decompression_bomb_is_bounded(client, collection):
    data = pdf_bomb(100_000_000)
    assert len(data) < 1_000_000
    assert_error(upload(client, collection, ("bomb.pdf", data)), 413, "decompression_bomb")


def test_upload_over_the_limit_is_refused_before_spooling(client, collection):
    big = b"a" * 3_100_000
    assert_error(upload(client, collection, ("big.txt", big)), 413, "payload_too_large")


def test_streamed_upload_over_the_limit_is_413(client, collection):
    # Chunked, without Content-Length: the limit applies to the bytes actually received.
    boundary = "tinyllmboundary"
    head = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
            f"filename=\"big.txt\"\r\nContent-Type: text/plain\r\n\r\n").encode()

    def body():
        yield head
        for _ in range(40):
            yield b"b" * 100_000
        yield f"\r\n--{boundary}--\r\n".encode()

    response = client.post(f"/collections/{collection}/documents", content=body(),
                           headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert_error(response, 413, "payload_too_large")


@pytest.mark.parametrize("filename", [
    "../../../../etc/passwd", "/etc/shadow", "..\\..\\windows\\system32\\x.txt",
    "a" * 300 + ".txt", "new\nline\r.txt", ".hidden",
])
def test_hostile_filenames_never_reach_the_filesystem(client, collection, filename):
    response = upload(client, collection, (filename, b"harmless text about kites"))
    assert response.status_code == 200, response.text
    name = response.json()["documents"][0]["name"]
    assert "/" not in name and "\\" not in name and "\n" not in name and "\x00" not in name
    assert 0 < len(name) <= 200 and not name.startswith(".")
    data_dir = client.app.state.settings.data_dir
    written = [p.name for p in data_dir.rglob("*")]
    for part in ("passwd", "shadow", "system32", "aaaaaaaa", "line", "hidden", name):
        assert not any(part in w for w in written), (part, written)
    listed = client.get(f"/collections/{collection}/documents").json()["data"]
    assert [d["name"] for d in listed] == [name]


def test_empty_filename_is_not_a_file(client, collection):
    # Multipart without a filename is a plain form field, not an upload.
    assert_error(upload(client, collection, ("", b"text")), 400, "invalid_value")


def test_nul_in_filename(client, collection):
    boundary = "b0undary"
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"files\"; "
            f"filename=\"evil\x00.txt/../../x\"\r\n\r\nsome text\r\n--{boundary}--\r\n").encode()
    response = client.post(f"/collections/{collection}/documents", content=body,
                           headers={"content-type": f"multipart/form-data; boundary={boundary}"})
    assert response.status_code == 200, response.text
    assert response.json()["documents"][0]["name"] == "x"


@pytest.mark.parametrize("method,path,body,status,code", [
    ("post", "/collections", {"name": "../etc"}, 400, "invalid_collection_name"),
    ("post", "/collections", {"name": "x" * 65}, 400, "invalid_collection_name"),
    ("post", "/collections", {}, 400, "invalid_value"),
    ("delete", "/collections/nope-none", None, 404, "collection_not_found"),
    ("get", "/collections/nope-none/documents", None, 404, "collection_not_found"),
    ("delete", "/collections/nope-none/documents/abc", None, 404, "collection_not_found"),
    ("get", "/jobs/unknown", None, 404, "job_not_found"),
    ("post", "/search", {"query": "x", "collections": ["nope-none"]}, 404,
     "collection_not_found"),
    ("post", "/search", {"query": "", "collections": ["a"]}, 400, "invalid_value"),
    ("post", "/search", {"query": "x", "collections": []}, 400, "invalid_value"),
    ("post", "/search", {"query": "x", "collections": ["a"], "k": 0}, 400, "invalid_value"),
    ("post", "/search", {"query": "x", "collections": ["a"], "filter": {"color": "red"}}, 400,
     "invalid_value"),
    ("post", "/search", {"query": "x", "collections": ["a"], "filter": {"page": {"gte": "x"}}},
     400, "invalid_value"),
    ("post", "/search", {"query": "x", "collections": ["a"], "filter": {"page": {}}},
     400, "invalid_value"),
    ("post", "/search", {"query": "x", "collections": ["a"], "filter": {"page": True}},
     400, "invalid_value"),
    ("post", "/search", {"query": "x", "collections": ["a"], "filter": {"document": 3}}, 400,
     "invalid_value"),
    ("post", "/search", {"query": "x"}, 400, "invalid_value"),
    ("post", "/search", {"query": "x", "collection": "../etc"}, 400, "invalid_value"),
    ("post", "/search", {"query": "x", "collection": "a", "mode": "magic"}, 400,
     "invalid_value"),
    ("get", "/collections/a%3Fb", None, 400, "invalid_collection_name"),
    ("get", "/collections/a%25b/documents", None, 400, "invalid_collection_name"),
    ("delete", "/collections/a%23b", None, 400, "invalid_collection_name"),
    ("delete", "/collections/a%23b/documents/abc", None, 400, "invalid_collection_name"),
    ("post", "/search", {"query": "x", "collections": ["a"], "filter": []}, 400,
     "invalid_value"),
    ("post", "/v1/embeddings", {"input": "x", "model": "gpt-4"}, 404, "model_not_found"),
    ("post", "/v1/embeddings", {"input": [], "model": "all-MiniLM-L6-v2"}, 400,
     "invalid_value"),
    ("post", "/v1/embeddings", {"input": [1, 2, 3]}, 400, "invalid_value"),
])
def test_bad_requests(client, method, path, body, status, code):
    kw = {"json": body} if body is not None else {}
    assert_error(getattr(client, method)(path, **kw), status, code)


def test_malformed_json_is_400(client):
    assert_error(client.post("/search", content=b"{nope",
                             headers={"content-type": "application/json"}), 400, "invalid_json")


def test_upload_into_a_bad_collection_name(client):
    assert_error(upload(client, "bad name!", ("a.txt", b"text")), 400,
                 "invalid_collection_name")


def test_unknown_document_in_known_collection(client, collection):
    upload(client, collection, ("a.txt", b"some words"))
    assert_error(client.delete(f"/collections/{collection}/documents/0000"), 404,
                 "document_not_found")


def test_json_body_limit_is_small(client):
    huge = {"input": ["word " * 1000] * 1000}
    assert_error(client.post("/v1/embeddings", json=huge), 413, "payload_too_large")
