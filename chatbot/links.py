"""Links in the chat: fetch the page a message points at, safely, and hand back its text.

The fetch can be aimed at anything a URL names, so it is bounded and fenced:
- only http and https, at most FETCH_MAX_REDIRECTS hops, each checked like the first;
- the host is resolved once and every address checked: loopback, link-local (cloud metadata
  at 169.254.169.254), private, reserved and multicast addresses are refused unless
  FETCH_ALLOW lists them; IPv6 forms that carry an IPv4 address (IPv4-mapped and -compatible,
  NAT64 64:ff9b::/96, 6to4) are judged by that IPv4 address, and site-local, Teredo and
  local-use NAT64 addresses are refused; the connection then goes to the checked address (the
  URL's host only travels as the Host header and TLS name), so a DNS answer that changes
  between check and connect (rebinding) cannot reach anything else; a refusal names the
  link's host, never what it resolved to;
- FETCH_MAX_BYTES and FETCH_TIMEOUT_S bound the body and the whole fetch;
- HTML, text, PDF and DOCX only, extracted by rag's own extractors (`extracted_text`).
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import re
import socket
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit, urlunsplit

import httpx

from services.errors import APIError

from .config import Settings

URL = re.compile(r"https?://[^\s<>\"'`]+", re.IGNORECASE)
SUMMARIZE = re.compile(r"\bsummar(?:ize|ise|y)\b", re.IGNORECASE)
TYPES = {"text/html": "page.html", "application/xhtml+xml": "page.html",
         "text/plain": "page.txt", "text/markdown": "page.md", "application/pdf": "page.pdf",
         "application/vnd.openxmlformats-officedocument.wordprocessingml.document": "page.docx"}
IP = ipaddress.IPv4Address | ipaddress.IPv6Address
NAT64 = ipaddress.IPv6Network("64:ff9b::/96")  # RFC 6052: the last 32 bits are the IPv4 host
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")  # deprecated ::a.b.c.d, still routed by some
# No single IPv4 address to judge them by: refused unless FETCH_ALLOW lists them.
OPAQUE_V6 = (ipaddress.IPv6Network("fec0::/10"),  # site-local (deprecated, still routed)
             ipaddress.IPv6Network("2001::/32"),  # Teredo: a relay reaches embedded hosts
             ipaddress.IPv6Network("64:ff9b:1::/48"))  # local-use NAT64 (RFC 8215)
log = logging.getLogger(__name__)


@dataclass
class Page:
    url: str  # where the text came from (after redirects)
    text: str
    kind: str
    truncated: bool


def link_in(message: str) -> str | None:
    """The URL to summarize: the whole message is one URL, or it has one and asks to
    summarize it."""
    text = message.strip()
    found = URL.findall(text)
    if not found:
        return None
    url = found[0].rstrip(".,;:!?)]}")
    if text.rstrip("/") == found[0].rstrip("/") or SUMMARIZE.search(text):
        return url
    return None


def fetch_error(status: int, code: str, message: str) -> APIError:
    return APIError(status, message, code=code, type="fetch_error", param="url")


def allowed_networks(settings: Settings) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
    nets = []
    for part in settings.fetch_allow.split(","):
        if part.strip():
            nets.append(ipaddress.ip_network(part.strip(), strict=False))
    return nets


def embedded_ipv4(ip: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 form delivers to (mapped, compatible, NAT64, 6to4), if any."""
    if ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    if ip.sixtofour is not None:
        return ip.sixtofour
    if ip in NAT64 or ip in IPV4_COMPATIBLE:
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    return None


def public(ip: IP) -> bool:
    """A globally routable unicast address (not loopback, link-local, private, CGNAT...)."""
    if isinstance(ip, ipaddress.IPv6Address):
        if any(ip in net for net in OPAQUE_V6):
            return False
        inner = embedded_ipv4(ip)
        if inner is not None:
            return public(inner)
    return ip.is_global and not ip.is_multicast


def permitted(ip: IP, nets: list[ipaddress.IPv4Network | ipaddress.IPv6Network]) -> bool:
    """Public, or listed in FETCH_ALLOW as itself or as the IPv4 address it carries."""
    if public(ip):
        return True
    inner = embedded_ipv4(ip) if isinstance(ip, ipaddress.IPv6Address) else None
    forms = [ip] if inner is None else [ip, inner]
    return any(form in net for form in forms for net in nets)


async def resolve(host: str, port: int, settings: Settings) -> IP:
    """One address of `host` that may be fetched; refused if any address is off limits."""
    try:
        literal: IP | None = ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        literal = None
    if literal is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port,
                                                                 type=socket.SOCK_STREAM)
        except OSError as exc:
            raise fetch_error(502, "fetch_dns_failed", f"The name {host} could not be "
                              "resolved.") from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not addresses:
        raise fetch_error(502, "fetch_dns_failed", f"The name {host} has no address.")
    nets = allowed_networks(settings)
    for ip in addresses:  # all of them: a name must not mix a public and a private address
        if not permitted(ip, nets):
            # The address goes to the log only: the user learns nothing of the inner network.
            log.info("link %s refused: it resolves to %s", host, ip)
            raise fetch_error(403, "fetch_refused", f"Fetching {host} is not allowed: it "
                              "points at a loopback, link-local or private address.")
    return addresses[0]


async def _get(client: httpx.AsyncClient, url: str, settings: Settings) -> httpx.Response:
    """Open `url` on its checked address (the response is streaming, not yet read)."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise fetch_error(400, "fetch_bad_url", "Only http and https links can be fetched.")
    if parts.username or parts.password:
        raise fetch_error(400, "fetch_bad_url", "Links with a user name or password are not "
                          "fetched.")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    ip = await resolve(parts.hostname, port, settings)
    netloc = (f"[{ip}]" if ip.version == 6 else str(ip)) + f":{port}"
    target = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    host = parts.hostname + (f":{parts.port}" if parts.port else "")
    request = client.build_request("GET", target, headers={"Host": host},
                                   extensions={"sni_hostname": parts.hostname})
    try:
        return await client.send(request, stream=True)
    except httpx.TimeoutException:
        raise
    except httpx.HTTPError as exc:
        raise fetch_error(502, "fetch_failed", f"{url} could not be fetched "
                          f"({type(exc).__name__}).") from exc


async def download(url: str, settings: Settings) -> tuple[str, bytes, str]:
    """(final URL, body, content type) of `url`, every hop checked, body bounded."""
    limit = settings.fetch_max_bytes
    async with httpx.AsyncClient(timeout=settings.fetch_timeout_s, follow_redirects=False,
                                 headers={"User-Agent": "TinyLLM-chatbot",
                                          "Accept": ", ".join(TYPES)}) as client:
        for _ in range(settings.fetch_max_redirects + 1):
            response = await _get(client, url, settings)
            try:
                if response.is_redirect:
                    url = urljoin(url, response.headers.get("location", ""))
                    continue
                if response.status_code >= 400:
                    raise fetch_error(502, "fetch_status", f"{url} answered HTTP "
                                      f"{response.status_code}.")
                ctype = response.headers.get("content-type", "").split(";")[0].strip().lower()
                if ctype not in TYPES:
                    raise fetch_error(415, "fetch_unsupported_type", f"{url} is "
                                      f"{ctype or 'of no stated type'}; only web pages, text, "
                                      "PDF and DOCX can be summarized.")
                if int(response.headers.get("content-length") or 0) > limit:
                    raise too_large(url, limit)
                body = bytearray()
                async for piece in response.aiter_bytes():
                    body += piece
                    if len(body) > limit:
                        raise too_large(url, limit)
                return url, bytes(body), ctype
            finally:
                await response.aclose()
    raise fetch_error(502, "fetch_too_many_redirects", f"{url} redirects more than "
                      f"{settings.fetch_max_redirects} times.")


def too_large(url: str, limit: int) -> APIError:
    return fetch_error(413, "fetch_too_large", f"{url} is larger than {limit // 1000} kB; "
                       "it was cut off and not summarized.")


async def fetch_page(url: str, settings: Settings) -> Page:
    """The text of the page at `url`, bounded to LINK_MAX_CHARS."""
    try:
        final, body, ctype = await asyncio.wait_for(download(url, settings),
                                                    settings.fetch_timeout_s)
    except (asyncio.TimeoutError, httpx.TimeoutException) as exc:
        raise fetch_error(504, "fetch_timeout", f"{url} did not arrive within "
                          f"{settings.fetch_timeout_s:g} s; it was cut off.") from exc
    text, kind = await asyncio.to_thread(extracted_text, body, TYPES[ctype])
    text = " ".join(text.split()) if kind != "text" else text.strip()
    cut = len(text) > settings.link_max_chars
    return Page(final, text[:settings.link_max_chars], kind, cut)


def page_block(page: Page, intro: str) -> str:
    """The page's text, clearly delimited as untrusted data, after the link prompt."""
    text = page.text.replace("<<<", "<<").replace(">>>", ">>")
    return f"{intro}\n<<<PAGE {page.url}\n{text}\nPAGE>>>"


def extracted_text(data: bytes, filename: str) -> tuple[str, str]:
    """(text, kind) through the extractors rag uses, in their capped child process."""
    from services.extract import Limits
    from services.sandbox import extract_bounded

    result = extract_bounded(data, filename, Limits(timeout_s=30.0), 512 * 1024 * 1024)
    return result.text, result.kind
