"""A model hub on loopback with the Hugging Face Hub's URL shapes, for `tinyllm pull` tests:
`/<repo>/resolve/<rev>/<file>` (HEAD and GET, `Range`, ETag = SHA-256 as the hub sends for
LFS files, `X-Repo-Commit`), `/api/models/<repo>/tree/<rev>` listings, and faults to inject.
Point `HF_ENDPOINT` at `hub.url`."""

from __future__ import annotations

import hashlib
import json
import re
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

COMMIT = "0123456789abcdef0123456789abcdef01234567"


@dataclass
class Faults:
    drop_after: int | None = None  # close the connection after this many bytes, once
    corrupt: bool = False  # serve other bytes than the ones the ETag names
    truncate: int | None = None  # serve only this many bytes, with sizes that agree
    delay_s: float = 0.0  # pause between 64 KiB pieces (a slow link)...
    delay_after: int = 0  # ...once this many bytes of the file are sent


@dataclass
class FakeHub:
    files: dict[tuple[str, str], bytes] = field(default_factory=dict)  # (repo, path) -> data
    faults: Faults = field(default_factory=Faults)
    requests: list[tuple[str, str, str]] = field(default_factory=list)  # method, path, Range
    url: str = ""

    def add(self, repo: str, path: str, data: bytes) -> None:
        self.files[(repo, path)] = data

    def served(self, path: str) -> bytes:
        data = next(d for (r, p), d in self.files.items() if f"/{r}/resolve/" in path
                    and path.endswith("/" + p))
        if self.faults.truncate is not None:
            data = data[:self.faults.truncate]
        if self.faults.corrupt:
            data = data[:len(data) // 2] + bytes(len(data) - len(data) // 2)
        return data

    def etag(self, repo: str, name: str) -> str:
        return hashlib.sha256(self.files[(repo, name)]).hexdigest()


def _handler(hub: FakeHub) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _find(self) -> tuple[str, str] | None:
            m = re.match(r"^/(.+?/.+?)/resolve/([^/]+)/(.+)$", self.path.split("?")[0])
            if m and (m.group(1), m.group(3)) in hub.files:
                return m.group(1), m.group(3)
            return None

        def _json(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            if status == 404:
                self.send_header("X-Error-Code", "EntryNotFound")
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        def _head(self, found: tuple[str, str], length: int, total: int, start: int) -> None:
            self.send_header("Content-Length", str(length))
            self.send_header("ETag", f'"{hub.etag(*found)}"')
            self.send_header("X-Linked-Etag", f'"{hub.etag(*found)}"')
            self.send_header("X-Linked-Size", str(total))
            self.send_header("X-Repo-Commit", COMMIT)
            self.send_header("Accept-Ranges", "bytes")
            if start:
                self.send_header("Content-Range", f"bytes {start}-{total - 1}/{total}")
            self.end_headers()

        def do_HEAD(self) -> None:  # noqa: N802
            hub.requests.append(("HEAD", self.path, ""))
            found = self._find()
            if found is None:
                return self._json(404, {"error": "Entry not found"})
            size = len(hub.served(self.path))
            self.send_response(200)
            self._head(found, size, size, 0)

        def do_GET(self) -> None:  # noqa: N802
            rng = self.headers.get("Range", "")
            hub.requests.append(("GET", self.path, rng))
            tree = re.match(r"^/api/models/(.+?/.+?)/tree/([^/?]+)", self.path)
            if tree:
                repo = tree.group(1)
                entries = [{"type": "file", "path": p, "size": len(d), "oid": COMMIT,
                            "lfs": {"size": len(d), "oid": hub.etag(r, p), "pointerSize": 130}}
                           for (r, p), d in hub.files.items() if r == repo]
                return self._json(200 if entries else 404, entries or {"error": "no repo"})
            found = self._find()
            if found is None:
                return self._json(404, {"error": "Entry not found"})
            data = hub.served(self.path)
            start = int(rng[6:].split("-")[0]) if rng.startswith("bytes=") else 0
            if start >= len(data):
                self.send_response(416)
                self.send_header("Content-Length", "0")
                self.end_headers()
                return None
            self.send_response(206 if start else 200)
            self._head(found, len(data) - start, len(data), start)
            sent = 0
            for at in range(start, len(data), 65536):
                piece = data[at:at + 65536]
                drop = hub.faults.drop_after
                if drop is not None and sent + len(piece) > drop:
                    hub.faults.drop_after = None  # once
                    self.wfile.write(piece[:drop - sent])
                    self.wfile.flush()
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return None
                self.wfile.write(piece)
                sent += len(piece)
                if hub.faults.delay_s and at >= hub.faults.delay_after:
                    time.sleep(hub.faults.delay_s)
            return None

    return Handler


class HubServer:
    """`with HubServer() as hub:` a running FakeHub on a free loopback port."""

    def __init__(self) -> None:
        self.hub = FakeHub()
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self.hub))
        self.server.daemon_threads = True
        self.hub.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def __enter__(self) -> FakeHub:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self.hub

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()
