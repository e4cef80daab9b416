"""The visitor's address, read through the proxies the site trusts (``TRUSTED_PROXIES``).

Each proxy appends the address it received the request from to ``X-Forwarded-For``, so only the
right-most entries, those written by the site's own proxies, can be believed: everything to their
left is whatever the client sent. The visitor is the right-most hop that is not a trusted proxy.
"""

from __future__ import annotations

import ipaddress
from functools import cache
from typing import Any

from .app_settings import get_config

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:
        text = text[1 : text.index("]")]  # [v6]:port
    elif text.count(":") == 1:
        text = text.split(":")[0]  # v4:port
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        return None


@cache
def _networks(trusted: tuple[str, ...]) -> tuple[Network, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in trusted)


def trusted_proxies_invalid(trusted: Any) -> list[str]:
    """The entries of a ``TRUSTED_PROXIES`` list that are no address or network."""
    if isinstance(trusted, int):
        return []
    invalid = []
    for entry in trusted:
        try:
            ipaddress.ip_network(entry, strict=False)
        except (TypeError, ValueError):
            invalid.append(entry)
    return invalid


def forwarded_client(*, peer: str | None, forwarded_for: str, trusted: Any) -> str | None:
    """The visitor's address, given the socket's ``peer`` and its ``X-Forwarded-For``.

    ``trusted`` is a count of proxies in front of the site (each appends one entry), or a list of
    their addresses and networks. 0 or an empty list ignores the header.
    """
    if not trusted or peer is None:
        return peer
    hops = [peer, *reversed([entry for entry in forwarded_for.split(",") if entry.strip()])]
    addresses = [_ip(hop) for hop in hops]
    if isinstance(trusted, int):
        # The peer and the entries right of the visitor's are the site's proxies.
        chosen = min(trusted, len(hops) - 1)
    else:
        networks = _networks(tuple(trusted))
        chosen = 0
        while (
            chosen < len(hops) - 1
            and addresses[chosen] is not None
            and any(addresses[chosen] in network for network in networks)
        ):
            chosen += 1
    # A proxy that forwarded nonsense is the last address known.
    while chosen > 0 and addresses[chosen] is None:
        chosen -= 1
    address = addresses[chosen]
    return str(address) if address is not None else peer


def client_address(scope: dict[str, Any]) -> str | None:
    """The visitor's address for a WebSocket (or HTTP) ASGI ``scope``."""
    peer = (scope.get("client") or [None])[0]
    trusted = get_config()["TRUSTED_PROXIES"]
    if not trusted:
        return peer
    values = [
        value.decode("latin-1")
        for name, value in scope.get("headers") or []
        if name.lower() == b"x-forwarded-for"
    ]
    return forwarded_client(peer=peer, forwarded_for=",".join(values), trusted=trusted)


def address_bucket(ip: str | None) -> str:
    """The key a client address is counted under: IPv4 as is, IPv6 per /64."""
    if not ip:
        return ""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            # A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d.
            return str(address.ipv4_mapped)
        # One subscriber usually holds a whole /64.
        return str(ipaddress.ip_network(f"{address}/64", strict=False))
    return str(address)


def request_address(request: Any) -> str | None:
    """The visitor's address for a Django request (ASGI or WSGI), as for its sockets."""
    scope = getattr(request, "scope", None)
    if scope is not None:
        return client_address(scope)
    peer = request.META.get("REMOTE_ADDR") or None
    trusted = get_config()["TRUSTED_PROXIES"]
    forwarded_for = request.META.get("HTTP_X_FORWARDED_FOR", "")
    return forwarded_client(peer=peer, forwarded_for=forwarded_for, trusted=trusted)
