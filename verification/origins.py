"""The WebSocket's ``Origin`` check: scheme, host and port must all match an allowed origin.

Channels' ``AllowedHostsOriginValidator`` compares the origin's host with ``ALLOWED_HOSTS`` only,
so a page on another port of the same host (``http://127.0.0.1:9999``), or the plain-HTTP twin of
an HTTPS site, could open the visitor's socket with the visitor's cookies. Allowed here: the
site's own origin (the scheme the request came in on, as Django's ``request.is_secure()`` judges
it through ``SECURE_PROXY_SSL_HEADER``, and the ``Host`` header) and each of
``CSRF_TRUSTED_ORIGINS`` (``https://*.example.com`` allows subdomains, as Django's CSRF check
does).

A handshake without an ``Origin`` header is let through: every browser sends one with a
WebSocket, and a client that is not a browser holds no visitor's cookies and can write any header
it likes.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.utils.http import is_same_domain

#: Close code for a handshake from an origin that is not allowed: HTTP's 403 in the range an
#: application may send. Sent before the handshake completes, so a browser sees it fail.
CLOSE_ORIGIN_NOT_ALLOWED = 4003

DEFAULT_PORTS = {"http": 80, "https": 443}

Origin = tuple[str, str, int]


def _parse(scheme: str, netloc: str) -> Origin | None:
    """(scheme, host, port) of ``scheme://netloc``, the port made explicit, or None."""
    if scheme not in DEFAULT_PORTS:
        return None
    try:
        parts = urlsplit(f"{scheme}://{netloc}")
        port = parts.port
    except ValueError:
        return None
    if not parts.hostname:
        return None
    return scheme, parts.hostname.lower(), port or DEFAULT_PORTS[scheme]


def _headers(scope: dict[str, Any]) -> dict[str, str]:
    return {
        name.decode("latin-1").lower(): value.decode("latin-1")
        for name, value in scope.get("headers") or []
    }


def _own_origin(scope: dict[str, Any], headers: dict[str, str]) -> Origin | None:
    secure = scope.get("scheme") in ("wss", "https")
    proxy_header = getattr(settings, "SECURE_PROXY_SSL_HEADER", None)
    if proxy_header:
        name, secure_value = proxy_header
        name = name.removeprefix("HTTP_").replace("_", "-").lower()
        if name in headers:
            secure = headers[name].split(",")[0].strip() == secure_value
    return _parse("https" if secure else "http", headers.get("host", ""))


def origin_allowed(scope: dict[str, Any]) -> bool:
    """Whether the handshake in ``scope`` comes from the site itself or a trusted origin."""
    headers = _headers(scope)
    if "origin" not in headers:
        return True
    raw = urlsplit(headers["origin"])
    origin = _parse(raw.scheme.lower(), raw.netloc)
    if origin is None:
        return False  # "null", a file: page, an extension...
    if origin == _own_origin(scope, headers):
        return True
    for trusted in getattr(settings, "CSRF_TRUSTED_ORIGINS", []):
        entry = urlsplit(trusted)
        wildcard = entry.netloc.startswith("*")
        allowed = _parse(entry.scheme.lower(), entry.netloc.lstrip("*"))
        if allowed is None:
            continue
        if wildcard:
            same_domain = is_same_domain(origin[1], "." + allowed[1].lstrip("."))
            if same_domain and (origin[0], origin[2]) == (allowed[0], allowed[2]):
                return True
        elif origin == allowed:
            return True
    return False
