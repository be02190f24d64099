"""The login limit: an attempt is reserved before argon2 runs, so a burst of wrong logins gets
the allowance and no more, on one chatbot or on several sharing a database; it is kept per
account and per client, the client behind a proxy only when that proxy is trusted."""

from __future__ import annotations

import concurrent.futures
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

import httpx
import httpx2
import pytest
from argon2 import PasswordHasher
from fastapi import FastAPI
from fastapi.testclient import TestClient

from chatbot import auth
from chatbot.config import Settings
from chatbot.main import create_app
from chatbot.proxies import client_key
from chatbot.store import users
from tests.chatbot.conftest import PASSWORD, chatbot_env, dead_url
from tests.chatbot.fake_llm import fake_llm
from tests.utils.procs import ServiceProcess

ATTEMPTS = 3  # CHATBOT_LOGIN_ATTEMPTS of these tests; a client gets 5x that
WINDOW_S = 900
WRONG = "wrong password"
CODES = {401: "invalid_login", 429: "too_many_logins"}  # what a wrong login may get
# verify reads argon2's cost from the stored hash: the tests' accounts verify in a millisecond.
CHEAP_HASH = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1).hash(PASSWORD)
Response = httpx.Response | httpx2.Response  # a real server's, or TestClient's


def make_settings(db_url: str, **extra: Any) -> Settings:
    fields = {"auth": "accounts", "database_url": db_url, "login_attempts": ATTEMPTS,
              "login_window_s": WINDOW_S, "allowed_hosts": "testserver",
              "llm_urls": dead_url() + "/v1", "rag_url": dead_url()}
    return Settings(**{**fields, **extra})


def with_peer_header(app: FastAPI) -> Callable[..., Any]:
    """The app behind a shim that takes the TCP peer from `x-test-peer`, so one test client
    can speak from several addresses."""

    async def shim(scope: dict, receive: Any, send: Any) -> None:
        peer = dict(scope.get("headers") or []).get(b"x-test-peer")
        if scope["type"] == "http" and peer:
            scope = {**scope, "client": (peer.decode(), 40000)}
        await app(scope, receive, send)

    return shim


def add_users(app: FastAPI, *names: str) -> None:
    def create(s):  # noqa: ANN001, ANN202
        for name in names:
            users.create(s, name, CHEAP_HASH)

    app.state.db.call(create)


def post_login(client: TestClient | httpx.Client, username: str, password: str = WRONG,
               **headers: str) -> Response:
    return client.post("/api/auth/login", json={"username": username, "password": password},
                       headers=headers)


def assert_status(r: Response, status: int, code: str | None = None) -> None:
    assert r.status_code == status, r.text
    if code is not None:
        assert r.json()["error"]["code"] == code
    if status == 429:
        assert 1 <= int(r.headers["retry-after"]) <= WINDOW_S


def burst(clients: list[TestClient], username: str, n: int) -> Counter[int]:
    """n wrong logins at once, spread over the clients; their statuses, each checked."""
    start = threading.Barrier(n)

    def one(i: int) -> Response:
        start.wait()
        return post_login(clients[i % len(clients)], username)

    with concurrent.futures.ThreadPoolExecutor(n) as pool:
        responses = list(pool.map(one, range(n)))
    for r in responses:
        assert r.status_code in CODES, r.text
        assert_status(r, r.status_code, CODES[r.status_code])
    return Counter(r.status_code for r in responses)


@pytest.fixture()
def verifications(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every argon2 verification the chatbot runs, each as slow as a real one on a server."""
    calls: list[str] = []
    real = auth.password_ok

    def counting(stored: str, password: str) -> bool:
        calls.append(password)
        time.sleep(0.2)  # argon2's real cost: the window in which a burst races
        return real(stored, password)

    monkeypatch.setattr(auth, "password_ok", counting)
    return calls


@pytest.fixture()
def app_client(tmp_path) -> Iterator[TestClient]:  # noqa: ANN001
    """One chatbot on SQLite that trusts the proxies in 10.0.0.0/8, one login per account."""
    app = create_app(make_settings(f"sqlite:///{tmp_path}/c.db", login_attempts=1,
                                   trusted_proxies="10.0.0.0/8"))
    with TestClient(with_peer_header(app)) as client:
        add_users(app, "bob", *(f"u{i}" for i in range(6)), *(f"v{i}" for i in range(6)))
        yield client


def test_parallel_wrong_logins_are_evaluated_at_most_the_allowance(
        db_url: str, verifications: list[str]) -> None:
    app = create_app(make_settings(db_url))
    with TestClient(app) as client:
        add_users(app, "alice")
        assert burst([client], "alice", 16) == {401: ATTEMPTS, 429: 16 - ATTEMPTS}
        assert len(verifications) == ATTEMPTS
        # The account stays locked for the right password too, without another verification.
        assert_status(post_login(client, "alice", PASSWORD), 429, "too_many_logins")
        assert len(verifications) == ATTEMPTS


def test_replicas_sharing_a_database_share_the_allowance(
        db_url: str, verifications: list[str]) -> None:
    apps = [create_app(make_settings(db_url)) for _ in range(2)]
    with ExitStack() as stack:
        clients = [stack.enter_context(TestClient(app)) for app in apps]
        add_users(apps[0], "alice")
        assert burst(clients, "alice", 16) == {401: ATTEMPTS, 429: 16 - ATTEMPTS}
        assert len(verifications) == ATTEMPTS


def test_a_flood_against_one_account_locks_no_other_account(
        tmp_path, verifications: list[str]) -> None:  # noqa: ANN001
    app = create_app(make_settings(f"sqlite:///{tmp_path}/c.db"))
    with TestClient(app) as client:
        add_users(app, "alice", "bob", "carol")
        # 20 is past what this client may fail in all (5 x 3): refused ones do not count.
        assert burst([client], "alice", 20) == {401: ATTEMPTS, 429: 20 - ATTEMPTS}
        assert_status(post_login(client, "bob", PASSWORD), 200)
        assert_status(post_login(client, "carol"), 401, "invalid_login")
        assert_status(post_login(client, "alice", PASSWORD), 429, "too_many_logins")


def test_a_successful_login_clears_the_account_but_not_the_client(app_client: TestClient) -> None:
    # One failure per account (login_attempts=1): bob's right password clears his account...
    assert_status(post_login(app_client, "bob", PASSWORD), 200)
    assert_status(post_login(app_client, "bob"), 401, "invalid_login")
    assert_status(post_login(app_client, "bob"), 429, "too_many_logins")
    # ...and a success does not use up the client's allowance (5): four more failures fit.
    for name in ("u0", "u1", "u2", "u3"):
        assert_status(post_login(app_client, name), 401, "invalid_login")
    assert_status(post_login(app_client, "u4"), 429, "too_many_logins")


def test_forwarded_for_from_a_trusted_proxy_tells_its_clients_apart(
        app_client: TestClient) -> None:
    proxy = {"x-test-peer": "10.0.0.2"}
    # Client A, behind the proxy, invents a new first address each time: the proxy appends
    # A's real one, and that is what counts.
    for i in range(5):
        r = post_login(app_client, f"u{i}", **proxy,
                       **{"x-forwarded-for": f"203.0.113.{i}, 198.51.100.1"})
        assert_status(r, 401, "invalid_login")
    r = post_login(app_client, "u5", **proxy, **{"x-forwarded-for": "203.0.113.9, 198.51.100.1"})
    assert_status(r, 429, "too_many_logins")
    # Client B, behind the same proxy, is not locked out of its account.
    r = post_login(app_client, "bob", PASSWORD, **proxy, **{"x-forwarded-for": "198.51.100.2"})
    assert_status(r, 200)


def test_forwarded_for_from_an_untrusted_peer_is_ignored(app_client: TestClient) -> None:
    for i in range(5):
        r = post_login(app_client, f"v{i}", **{"x-test-peer": "192.0.2.50",
                                                "x-forwarded-for": f"198.51.100.{10 + i}"})
        assert_status(r, 401, "invalid_login")
    r = post_login(app_client, "v5", **{"x-test-peer": "192.0.2.50",
                                         "x-forwarded-for": "198.51.100.99"})
    assert_status(r, 429, "too_many_logins")
    r = post_login(app_client, "bob", PASSWORD, **{"x-test-peer": "192.0.2.51"})
    assert_status(r, 200)


@pytest.mark.slow
def test_a_client_cannot_dodge_the_limit_by_inventing_forwarded_addresses() -> None:
    """The real server (uvicorn) on loopback with the default settings: the header is no
    client's address, whoever sends it."""
    with fake_llm("unused") as llm, ServiceProcess("chatbot", "CHATBOT_", env=chatbot_env(
            llm, CHATBOT_AUTH="accounts", CHATBOT_LOGIN_ATTEMPTS="1")) as bot, \
            httpx.Client(base_url=bot.url, timeout=30) as client:
        for i in range(5):
            r = post_login(client, f"nobody{i}", **{"x-forwarded-for": f"198.51.100.{i}"})
            assert_status(r, 401, "invalid_login")
        r = post_login(client, "nobody5", **{"x-forwarded-for": "198.51.100.5"})
        assert_status(r, 429, "too_many_logins")


@pytest.mark.parametrize(("peer", "forwarded_for", "trusted", "key"), [
    ("198.51.100.1", [], "", "198.51.100.1"),
    ("198.51.100.1", ["203.0.113.5"], "", "198.51.100.1"),  # no trusted proxy: ignored
    ("198.51.100.1", ["203.0.113.5"], "10.0.0.0/8", "198.51.100.1"),  # peer not trusted
    ("10.0.0.2", ["203.0.113.5"], "10.0.0.0/8", "203.0.113.5"),
    ("10.0.0.2", ["1.2.3.4, 203.0.113.5"], "10.0.0.0/8", "203.0.113.5"),  # forged entry
    ("10.0.0.2", ["203.0.113.5, 10.0.0.7"], "10.0.0.0/8", "203.0.113.5"),  # proxy chain
    ("10.0.0.2", ["203.0.113.5", "10.0.0.7"], "10.0.0.2, 10.0.0.7", "203.0.113.5"),
    ("10.0.0.2", [], "10.0.0.0/8", "10.0.0.2"),  # the proxy's own request
    ("10.0.0.2", ["10.0.0.3"], "10.0.0.0/8", "10.0.0.3"),  # trusted all the way
    ("::1", ["2001:db8:1:2:3:4:5:6"], "::1", "2001:db8:1:2::/64"),  # one IPv6 client: a /64
    ("2001:db8:1:2::9", [], "", "2001:db8:1:2::/64"),
    ("::ffff:198.51.100.1", [], "", "198.51.100.1"),
    (None, ["203.0.113.5"], "", "unknown"),
])
def test_client_key(peer: str | None, forwarded_for: list[str], trusted: str, key: str) -> None:
    networks = Settings(trusted_proxies=trusted).trusted_proxy_networks()
    assert client_key(peer, forwarded_for, networks) == key


@pytest.mark.parametrize("bad", ["10.0.0.0/33", "proxy.example", "10.0.0.1,nonsense"])
def test_trusted_proxies_must_be_addresses(bad: str) -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6"):
        Settings(trusted_proxies=bad)
