"""The socket's Origin check: scheme, host and port must all match an allowed origin."""

from __future__ import annotations

import pytest
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from verification.origins import CLOSE_ORIGIN_NOT_ALLOWED
from verification.routing import websocket_urlpatterns

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture
def handshake(fake_settings, stop_runtime):
    """``await handshake(origin, host=..., scheme=...)``: (connected, close code)."""

    async def connect(
        origin: str | None, *, host: str = "localhost:8000", scheme: str = "ws", **headers: str
    ) -> tuple[bool, int | None]:
        sent = [(b"host", host.encode())]
        if origin is not None:
            sent.append((b"origin", origin.encode()))
        sent += [
            (name.replace("_", "-").encode(), value.encode()) for name, value in headers.items()
        ]
        communicator = WebsocketCommunicator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns)), "/ws/verification/", headers=sent
        )
        communicator.scope["scheme"] = scheme
        try:
            return await communicator.connect(timeout=10)
        finally:
            await communicator.disconnect()

    return connect


async def test_the_sites_own_origin_is_allowed(handshake):
    assert (await handshake("http://localhost:8000"))[0]
    assert (await handshake("https://localhost", host="localhost", scheme="wss"))[0]
    assert (await handshake("http://LOCALHOST:80", host="localhost"))[0]


@pytest.mark.parametrize(
    "origin",
    [
        "http://localhost:9999",  # another port of the same host
        "http://localhost",  # the default port is another port
        "https://localhost:8000",  # another scheme
        "http://evil.example:8000",
        "null",
        "file://",
    ],
)
async def test_another_port_scheme_or_host_is_refused(handshake, origin):
    assert await handshake(origin) == (False, CLOSE_ORIGIN_NOT_ALLOWED)


async def test_the_plain_http_twin_of_an_https_site_is_refused(handshake):
    assert await handshake("http://localhost", host="localhost", scheme="wss") == (
        False,
        CLOSE_ORIGIN_NOT_ALLOWED,
    )


async def test_csrf_trusted_origins_are_allowed_exactly(handshake, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://app.example.com", "https://*.example.org"]
    assert (await handshake("https://app.example.com"))[0]
    assert (await handshake("https://app.example.com:443"))[0]
    assert (await handshake("https://www.example.org"))[0]
    for origin in (
        "http://app.example.com",
        "https://app.example.com:8443",
        "https://www.example.org:8443",
        "https://example.org.evil.test",
    ):
        assert await handshake(origin) == (False, CLOSE_ORIGIN_NOT_ALLOWED), origin


async def test_https_behind_a_proxy_counts_as_https(handshake, settings):
    """Behind a TLS proxy daphne sees ws://; SECURE_PROXY_SSL_HEADER says what the browser used."""
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    assert (await handshake("https://localhost", host="localhost", x_forwarded_proto="https"))[0]
    assert await handshake("http://localhost", host="localhost", x_forwarded_proto="https") == (
        False,
        CLOSE_ORIGIN_NOT_ALLOWED,
    )


async def test_a_handshake_without_origin_is_not_a_browser_and_passes(handshake):
    assert (await handshake(None))[0]
