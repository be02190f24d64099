"""Who the client is, for the login limit: the TCP peer, or, when the peer is a trusted proxy
(CHATBOT_TRUSTED_PROXIES), the nearest address in X-Forwarded-For that no trusted proxy has.

Each proxy appends the address it was connected from, so reading from the right, the first
untrusted address was written by a trusted proxy; whatever the client put to its left is
never read.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

Network = ipaddress.IPv4Network | ipaddress.IPv6Network
Address = ipaddress.IPv4Address | ipaddress.IPv6Address
UNKNOWN = "unknown"  # no peer address (a Unix socket)
IPV6_CLIENT_PREFIX = 64  # one IPv6 subscriber usually holds a whole /64


def parse_networks(value: str) -> list[Network]:
    """A comma list of addresses or CIDR networks; ValueError on anything else."""
    return [ipaddress.ip_network(part.strip(), strict=False)
            for part in value.split(",") if part.strip()]


def client_key(peer: str | None, forwarded_for: Sequence[str],
               trusted: Sequence[Network]) -> str:
    """The client a request counts against.

    Args:
        peer: the TCP peer's address (None when there is none).
        forwarded_for: every X-Forwarded-For header of the request, in order.
        trusted: the proxies whose X-Forwarded-For is believed.
    """
    if peer is None:
        return UNKNOWN
    hops = [hop.strip() for header in forwarded_for for hop in header.split(",") if hop.strip()]
    client = peer
    while hops and _is_trusted(client, trusted):
        client = hops.pop()
    address = _address(client)
    if address is None:
        return client[:64]  # not an address, yet written by a trusted proxy: its name for it
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return str(address.ipv4_mapped)
        return str(ipaddress.ip_network(f"{address}/{IPV6_CLIENT_PREFIX}", strict=False))
    return str(address)


def _address(value: str) -> Address | None:
    try:
        return ipaddress.ip_address(value)
    except ValueError:
        return None


def _is_trusted(value: str, trusted: Sequence[Network]) -> bool:
    address = _address(value)
    if address is None:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in network for network in trusted)
