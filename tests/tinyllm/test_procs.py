"""ServiceProcess runs a program of any kind (llama.cpp's server in the benchmark): it
gives it host and port under the prefix, waits for /health, and stops it."""

from __future__ import annotations

import sys

import httpx
import pytest

from tinyllm.procs import ServiceProcess

SERVER = """
import http.server, os
class Health(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200 if self.path == "/health" else 404)
        self.end_headers()
        self.wfile.write(os.environ["PEER_NAME"].encode())
http.server.HTTPServer((os.environ["PEER_HOST"], int(os.environ["PEER_PORT"])), Health
                       ).serve_forever()
"""


def test_a_command_gets_host_and_port_from_the_environment_and_is_stopped() -> None:
    proc = ServiceProcess("peer", "PEER_", env={"PEER_NAME": "peer"}, health_timeout=20,
                          command=[sys.executable, "-c", SERVER])
    with proc:
        assert httpx.get(proc.url + "/health").text == "peer"
    assert not proc.alive()


def test_a_command_that_exits_fails_fast_with_its_output() -> None:
    proc = ServiceProcess("peer", "PEER_", health_timeout=20,
                          command=[sys.executable, "-c", "print('no model here'); exit(3)"])
    with pytest.raises(RuntimeError, match="no model here"):
        proc.start()
