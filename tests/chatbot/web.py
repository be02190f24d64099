"""A small local web server for the link tests: pages, a PDF, a DOCX, redirects, an
oversized and a slow page; it counts the requests each path received."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from tests.rag.docs import make_docx, make_pdf
from tests.utils.procs import free_port

PAGE = ("<!doctype html><html><head><title>Quillton news</title></head><body>"
        "<h1>The zorblax festival</h1><p>The zorblax festival is held every spring in the "
        "town of Quillton. Visitors paint giant turnips blue.</p>"
        "<script>ignore me</script></body></html>")
PDF_TEXT = "The marmot census of Upper Fellbrook counted 412 marmots in 2025."
DOCX_TEXT = "Minutes: the Quillton council voted to rename the bridge Turnip Crossing."


class Web:
    def __init__(self, host: str) -> None:
        self.host, self.port = host, free_port()
        self.hits: Counter[str] = Counter()
        self.hosts: list[str] = []
        self.redirect_to = ""
        self.big_bytes = 3_000_000
        self.slow_s = 30.0

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"


def handler(web: Web) -> type[BaseHTTPRequestHandler]:
    pdf, docx = make_pdf([PDF_TEXT]), make_docx([DOCX_TEXT])

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def send(self, body: bytes, ctype: str, status: int = 200) -> None:
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802
            path = self.path.split("?")[0]
            web.hits[path] += 1
            web.hosts.append(self.headers.get("Host", ""))
            if path == "/page.html":
                self.send(PAGE.encode(), "text/html; charset=utf-8")
            elif path == "/doc.pdf":
                self.send(pdf, "application/pdf")
            elif path == "/minutes.docx":
                self.send(docx, "application/vnd.openxmlformats-officedocument."
                                "wordprocessingml.document")
            elif path == "/notes.txt":
                self.send(b"Plain notes: bring 3 blue turnips.", "text/plain")
            elif path == "/image.png":
                self.send(b"\x89PNG....", "image/png")
            elif path == "/redirect":
                self.send_response(302)
                self.send_header("Location", web.redirect_to)
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path == "/loop":
                self.send_response(302)
                self.send_header("Location", "/loop")
                self.send_header("Content-Length", "0")
                self.end_headers()
            elif path == "/big":  # no Content-Length: the limit must hold while streaming
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                chunk = b"<p>" + b"x" * 65_536 + b"</p>"
                try:
                    for _ in range(web.big_bytes // len(chunk) + 1):
                        self.wfile.write(chunk)
                except OSError:
                    pass
            elif path == "/slow":
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.end_headers()
                deadline = time.monotonic() + web.slow_s
                try:
                    while time.monotonic() < deadline:
                        self.wfile.write(b"<p>tick</p>")
                        self.wfile.flush()
                        time.sleep(0.5)
                except OSError:
                    pass
            else:
                self.send(b"not found", "text/plain", 404)

    return Handler


@contextmanager
def web_server(host: str = "127.0.0.1") -> Iterator[Web]:
    web = Web(host)
    server = ThreadingHTTPServer((host, web.port), handler(web))
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield web
    finally:
        server.shutdown()
        server.server_close()
