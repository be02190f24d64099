"""Links in the chat: summaries of pages, PDFs and DOCX served by a local web server, every
SSRF attempt refused (loopback, metadata, private ranges, a redirect to loopback, a name
resolving to loopback, DNS rebinding), oversized and slow pages cut off with a clear message."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterator
from urllib.parse import urlsplit

import httpx
import pytest

from chatbot import links
from chatbot.config import Settings
from services.errors import APIError
from tests.chatbot.conftest import answer_of, chat_events, chatbot_env, conversation_of
from tests.chatbot.fake_llm import fake_llm
from tests.chatbot.web import DOCX_TEXT, PDF_TEXT, Web, web_server
from tests.utils.procs import ServiceProcess

SUMMARY = "A scripted summary."
ALLOWED = "127.0.0.2"  # the web server's address, let through by CHATBOT_FETCH_ALLOW


@pytest.mark.parametrize("message,url", [
    ("https://example.org/a", "https://example.org/a"),
    ("  http://example.org/a/b?c=1  ", "http://example.org/a/b?c=1"),
    ("Please summarize https://example.org/x.", "https://example.org/x"),
    ("Summarise (https://example.org/y)", "https://example.org/y"),
    ("Can you give me a summary of http://example.org/z", "http://example.org/z"),
    ("I read https://example.org/a yesterday, it was fun", None),
    ("no links here, summarize my day", None),
    ("ftp://example.org/file", None),
])
def test_which_messages_are_link_requests(message: str, url: str | None) -> None:
    assert links.link_in(message) == url


@pytest.fixture(scope="module")
def sites() -> Iterator[tuple[Web, Web]]:
    """The allowed web server (127.0.0.2) and one on loopback proper that must never be hit."""
    with web_server(ALLOWED) as allowed, web_server("127.0.0.1") as inner:
        yield allowed, inner


@pytest.fixture(scope="module")
def bot(sites) -> Iterator[tuple[ServiceProcess, dict]]:  # noqa: ANN001
    stats: dict = {}
    with fake_llm(SUMMARY, stats=stats) as llm, ServiceProcess(
            "chatbot", "CHATBOT_", env=chatbot_env(
            llm, CHATBOT_FETCH_ALLOW=f"{ALLOWED}/32", CHATBOT_FETCH_MAX_BYTES="1000000",
            CHATBOT_FETCH_TIMEOUT_S="3", CHATBOT_DEFAULT_MODEL="scripted")) as proc:
        yield proc, stats


def system_sent(stats: dict) -> str:
    return stats["requests"][-1]["messages"][0]["content"]


def error_of(events: list) -> dict:
    name, data = events[-1]
    assert name == "error", events
    return data


@pytest.mark.parametrize("path,expect", [
    ("/page.html", "The zorblax festival is held every spring"),
    ("/doc.pdf", PDF_TEXT),
    ("/minutes.docx", DOCX_TEXT),
    ("/notes.txt", "Plain notes: bring 3 blue turnips."),
])
def test_a_link_is_fetched_and_summarized_citing_it(bot, sites, path: str,  # noqa: ANN001
                                                    expect: str) -> None:
    proc, stats = bot
    url = sites[0].url + path
    with httpx.Client(base_url=proc.url, timeout=60) as client:
        events = chat_events(client, url)
        assert ("status", {"state": "fetching", "url": url}) in events
        assert answer_of(events) == f"{SUMMARY}\n\nSource: {url}"
        system = system_sent(stats)
        assert expect in system and f"<<<PAGE {url}" in system
        assert f"cite it as {url}" in system  # the link prompt, with {url} filled in
        assert "ignore me" not in system  # scripts are not text
        msg = client.get(f"/api/conversations/{conversation_of(events)}").json()["messages"][-1]
        assert msg["status"] == "complete" and msg["content"].endswith(f"Source: {url}")
        assert msg["meta"]["link"]["url"] == url


def test_summarize_with_a_redirect_and_an_admin_link_prompt(bot, sites) -> None:  # noqa: ANN001
    proc, stats = bot
    allowed, _ = sites
    allowed.redirect_to = "/page.html"
    with httpx.Client(base_url=proc.url, timeout=60) as client:
        r = client.put("/api/admin/prompts/link", json={"text": "Sum up {url} in one line."})
        assert r.status_code == 200, r.text
        events = chat_events(client, f"summarize {allowed.url}/redirect please")
        assert "Sum up " + allowed.url + "/page.html in one line." in system_sent(stats)
        assert answer_of(events).endswith(f"Source: {allowed.url}/page.html")
        assert client.delete("/api/admin/prompts/link").status_code == 200


@pytest.mark.parametrize("target", [
    "http://127.0.0.1:{inner}/page.html",
    "http://localhost:{inner}/page.html",  # a name that resolves to loopback
    "http://[::1]:{inner}/page.html",
    "http://169.254.169.254/latest/meta-data/",
    "http://10.0.0.1/", "http://192.168.1.1/", "http://172.16.0.1/", "http://100.64.0.1/",
    "http://0.0.0.0:{inner}/page.html",
    "http://[::ffff:127.0.0.1]:{inner}/page.html",
    "{allowed}/redirect",  # allowed site, redirect to loopback proper
])
def test_ssrf_attempts_are_refused(bot, sites, target: str) -> None:  # noqa: ANN001
    proc, stats = bot
    allowed, inner = sites
    allowed.redirect_to = f"http://127.0.0.1:{inner.port}/page.html"
    url = target.format(inner=inner.port, allowed=allowed.url)
    before = len(stats["requests"])
    with httpx.Client(base_url=proc.url, timeout=60) as client:
        err = error_of(chat_events(client, url))
    assert err["status"] == 403 and err["error"]["code"] == "fetch_refused", err
    assert "not allowed" in err["error"]["message"]
    assert sum(inner.hits.values()) == 0  # nothing on loopback was ever asked
    assert len(stats["requests"]) == before  # and the model was not asked either


@pytest.mark.parametrize("path,status,code,words", [
    ("/big", 413, "fetch_too_large", "larger than 1000 kB; it was cut off"),
    ("/slow", 504, "fetch_timeout", "did not arrive within 3 s; it was cut off"),
    ("/image.png", 415, "fetch_unsupported_type", "image/png; only web pages, text, PDF"),
    ("/loop", 502, "fetch_too_many_redirects", "redirects more than 5 times"),
    ("/missing", 502, "fetch_status", "answered HTTP 404"),
])
def test_bad_pages_are_cut_off_with_a_clear_message(
        bot, sites, path: str, status: int, code: str, words: str) -> None:  # noqa: ANN001
    proc, _ = bot
    url = sites[0].url + path
    with httpx.Client(base_url=proc.url, timeout=60) as client:
        events = chat_events(client, url)
        err = error_of(events)
        assert err["status"] == status and err["error"]["code"] == code, err
        assert words in err["error"]["message"]
        msg = client.get(f"/api/conversations/{conversation_of(events)}").json()["messages"][-1]
        assert msg["status"] == "error" and msg["meta"]["error"]["code"] == code


def test_dns_is_resolved_once_and_the_checked_address_is_used(
        sites, monkeypatch) -> None:  # noqa: ANN001
    """A rebinding name: public-looking first (allowed), loopback on every later lookup."""
    allowed, inner = sites
    answers = [ALLOWED, "127.0.0.1", "127.0.0.1"]
    calls: list[str] = []

    async def getaddrinfo(self, host, port, **kw):  # noqa: ANN001, ANN202, ANN003
        calls.append(host)
        ip = answers[min(len(calls) - 1, 2)]
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (ip, port))]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    settings = Settings(fetch_allow=f"{ALLOWED}/32")
    page = asyncio.run(links.fetch_page(f"http://rebind.test:{allowed.port}/page.html",
                                        settings))
    assert "zorblax festival" in page.text
    assert calls == ["rebind.test"]  # one lookup, then the connection went to that address
    assert allowed.hosts[-1] == f"rebind.test:{allowed.port}"  # the name, as the Host header
    assert sum(inner.hits.values()) == 0
    with pytest.raises(APIError) as err:  # its second answer would have been refused
        asyncio.run(links.fetch_page(f"http://rebind.test:{allowed.port}/page.html", settings))
    assert err.value.code == "fetch_refused"


def test_gateway_and_terminal_summarize_links_for_tinyllm_chat(bot, sites) -> None:  # noqa: ANN001
    import sys

    import openai
    import pexpect

    from tinyllm.procs import REPO

    proc, stats = bot
    allowed, inner = sites
    url = allowed.url + "/page.html"
    gw = openai.OpenAI(base_url=proc.url + "/v1", api_key="none", max_retries=0)
    reply = gw.chat.completions.create(model="scripted", extra_body={"chat_tools": True},
                                       messages=[{"role": "user", "content": url}])
    assert reply.choices[0].message.content == f"{SUMMARY}\n\nSource: {url}"
    assert "zorblax festival" in system_sent(stats)
    text = "".join(c.choices[0].delta.content or "" for c in gw.chat.completions.create(
        model="scripted", stream=True, extra_body={"chat_tools": True},
        messages=[{"role": "user", "content": "summarize " + url}]) if c.choices)
    assert text == f"{SUMMARY}\n\nSource: {url}"
    with pytest.raises(openai.PermissionDeniedError) as err:
        gw.chat.completions.create(model="scripted", extra_body={"chat_tools": True}, messages=[
            {"role": "user", "content": f"http://127.0.0.1:{inner.port}/page.html"}])
    assert err.value.body["code"] == "fetch_refused"
    # Plain OpenAI clients: a URL is just text.
    plain = gw.chat.completions.create(model="scripted",
                                       messages=[{"role": "user", "content": url}])
    assert plain.choices[0].message.content == SUMMARY
    child = pexpect.spawn(sys.executable, ["-m", "tinyllm", "chat", "--base-url",
                                           proc.url + "/v1"], cwd=str(REPO), encoding="utf-8",
                          timeout=60, dimensions=(40, 200))
    child.expect_exact("you> ")
    child.sendline(url)
    child.expect_exact(f"Source: {url}")
    child.expect_exact("you> ")
    child.sendline("summarize http://169.254.169.254/latest/meta-data/")
    child.expect_exact("error: the server answered 403: Fetching 169.254.169.254 is not allowed")
    child.expect_exact("you> ")
    child.sendline("")
    child.expect(pexpect.EOF)
    assert sum(inner.hits.values()) == 0


NAME = "docs.example"  # no digits: a digit in a refusal could only have come from DNS
REFUSAL = ("Fetching docs.example is not allowed: it points at a loopback, link-local or "
           "private address.")
HIDDEN = [  # forms that carry, or may reach, an address the plain checks already refuse
    "64:ff9b::a9fe:a9fe",  # NAT64 to 169.254.169.254, cloud metadata
    "64:ff9b::7f00:1",  # NAT64 to 127.0.0.1
    "64:ff9b::a00:1",  # NAT64 to 10.0.0.1
    "64:ff9b:1::a9fe:a9fe",  # local-use NAT64 prefix (RFC 8215)
    "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
    "2002:7f00:1::1",  # 6to4 of 127.0.0.1
    "2002:c0a8:101::",  # 6to4 of 192.168.1.1
    "::a9fe:a9fe",  # IPv4-compatible 169.254.169.254
    "::7f00:1",  # IPv4-compatible 127.0.0.1
    "::ffff:127.0.0.1",  # IPv4-mapped
    "::ffff:a9fe:a9fe",  # IPv4-mapped 169.254.169.254
    "fec0::1",  # site-local
    "feff:ffff::a9fe:a9fe",  # site-local, the top of fec0::/10
    "2001:0:a9fe:a9fe::",  # Teredo, server 169.254.169.254
    "2001:0:4136:e378:8000:63bf:f7f7:f7f7",  # Teredo, public server and client: refused too
]
PUBLIC = ["93.184.215.14", "2606:2800:21f:cb07:6820:80da:af6b:8b2c",
          "64:ff9b::808:808", "2002:808:808::1", "::ffff:8.8.8.8", "::808:808"]


def answering(monkeypatch: pytest.MonkeyPatch, *ips: str) -> None:
    """Every name resolves to `ips` (fault injection: what a hostile DNS could answer)."""
    async def getaddrinfo(self, host, port, **kw):  # noqa: ANN001, ANN202, ANN003
        return [(socket.AF_INET6 if ":" in ip else socket.AF_INET, socket.SOCK_STREAM, 6, "",
                 (ip, port)) for ip in ips]

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)


def refusal(host: str, settings: Settings | None = None) -> APIError:
    with pytest.raises(APIError) as err:
        asyncio.run(links.resolve(host, 443, settings or Settings()))
    return err.value


@pytest.mark.parametrize("ip", HIDDEN)
def test_embedded_and_tunnelled_ipv6_forms_are_refused_without_naming_the_address(
        monkeypatch: pytest.MonkeyPatch, ip: str) -> None:
    answering(monkeypatch, ip)
    err = refusal(NAME)
    assert (err.status, err.code, err.type, err.param) == (403, "fetch_refused",
                                                           "fetch_error", "url")
    assert err.message == REFUSAL
    assert not any(ch.isdigit() for ch in err.message)  # nothing of the DNS answer shows


@pytest.mark.parametrize("ip", HIDDEN)
def test_embedded_and_tunnelled_ipv6_literals_are_refused(ip: str) -> None:
    host = urlsplit(f"http://[{ip}]:8080/latest/meta-data/").hostname
    assert host == ip
    err = refusal(host)
    assert (err.status, err.code) == (403, "fetch_refused")
    assert err.message == (f"Fetching {ip} is not allowed: it points at a loopback, "
                           "link-local or private address.")


@pytest.mark.parametrize("ip", HIDDEN)
def test_a_name_mixing_a_public_and_a_hidden_address_is_refused(
        monkeypatch: pytest.MonkeyPatch, ip: str) -> None:
    answering(monkeypatch, "93.184.215.14", ip)
    assert refusal(NAME).message == REFUSAL


@pytest.mark.parametrize("ip", PUBLIC)
def test_public_addresses_still_pass(monkeypatch: pytest.MonkeyPatch, ip: str) -> None:
    answering(monkeypatch, ip)
    assert asyncio.run(links.resolve(NAME, 443, Settings())) == ipaddress.ip_address(ip)


@pytest.mark.parametrize("ip", ["10.0.0.7", "::ffff:10.0.0.7", "64:ff9b::a00:7"])
def test_fetch_allow_covers_an_intranet_address_in_its_ipv6_forms_too(
        monkeypatch: pytest.MonkeyPatch, ip: str) -> None:
    answering(monkeypatch, ip)
    settings = Settings(fetch_allow="10.0.0.0/8")
    assert asyncio.run(links.resolve(NAME, 443, settings)) == ipaddress.ip_address(ip)


def test_a_name_that_does_not_resolve_says_so_without_dns_details(
        monkeypatch: pytest.MonkeyPatch) -> None:
    async def getaddrinfo(self, host, port, **kw):  # noqa: ANN001, ANN202, ANN003
        raise socket.gaierror(-2, "Name or service not known (resolver 10.9.8.7)")

    monkeypatch.setattr(asyncio.BaseEventLoop, "getaddrinfo", getaddrinfo)
    err = refusal(NAME)
    assert (err.status, err.code) == (502, "fetch_dns_failed")
    assert err.message == "The name docs.example could not be resolved."
