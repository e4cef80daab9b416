"""A connection flood: many sockets from one address, capped per process before any work."""

from __future__ import annotations

import json

import pytest
from channels.auth import AuthMiddlewareStack
from channels.routing import URLRouter
from channels.testing import WebsocketCommunicator

from verification import consumers
from verification.routing import websocket_urlpatterns
from verification.sockets import CLOSE_TOO_MANY_SOCKETS, sockets_open

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture
def cap(fake_settings, stop_runtime):
    """``cap(n)``: at most ``n`` sockets per address."""

    def apply(limit: int) -> None:
        fake_settings.VERIFICATION = {
            **fake_settings.VERIFICATION,
            "MAX_SOCKETS_PER_ADDRESS": limit,
        }

    return apply


@pytest.fixture
async def sockets():
    """``await sockets(address)``: (connected, close code, communicator) of one more socket."""
    opened: list[WebsocketCommunicator] = []

    async def open_(address: str) -> tuple[bool, int | None, WebsocketCommunicator]:
        communicator = WebsocketCommunicator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
            "/ws/verification/",
            headers=[(b"host", b"localhost")],
        )
        communicator.scope["client"] = (address, 50000 + len(opened))
        opened.append(communicator)
        connected, code = await communicator.connect(timeout=10)
        if connected:
            assert json.loads(await communicator.receive_from())["type"] == "state"
        return connected, code, communicator

    yield open_
    for communicator in opened:
        await communicator.disconnect()


async def test_a_connection_flood_from_one_address_is_capped(cap, sockets, monkeypatch):
    """200 sockets from one address with a cap of 20: 20 open, the rest are refused with 4013
    before the socket costs any work (the embedded worker is not even asked to start)."""
    cap(20)
    started = 0
    ensure_started = consumers.runtime.ensure_started

    async def counting() -> None:
        nonlocal started
        started += 1
        await ensure_started()

    monkeypatch.setattr(consumers.runtime, "ensure_started", counting)
    results = [await sockets("203.0.113.7") for _ in range(200)]
    accepted = [connected for connected, _, _ in results if connected]
    assert len(accepted) == 20
    assert {code for connected, code, _ in results if not connected} == {CLOSE_TOO_MANY_SOCKETS}
    assert started == 20
    assert sockets_open(bucket="203.0.113.7") == 20
    # Another address is not held back by the flood.
    assert (await sockets("198.51.100.1"))[0]


async def test_a_closed_socket_frees_its_place(cap, sockets):
    cap(2)
    first = await sockets("203.0.113.8")
    assert (await sockets("203.0.113.8"))[0]
    assert not (await sockets("203.0.113.8"))[0]
    await first[2].disconnect()
    assert sockets_open(bucket="203.0.113.8") == 1
    assert (await sockets("203.0.113.8"))[0]


async def test_ipv6_addresses_are_counted_per_64(cap, sockets):
    """One subscriber holds a whole /64: changing the low bits is no way round the cap."""
    cap(2)
    assert (await sockets("2001:db8:1:2::1"))[0]
    assert (await sockets("2001:db8:1:2::ffff:1"))[0]
    connected, code, _ = await sockets("2001:db8:1:2:abcd::9")
    assert (connected, code) == (False, CLOSE_TOO_MANY_SOCKETS)
    assert (await sockets("2001:db8:1:3::1"))[0]


async def test_a_cap_of_zero_refuses_nothing(cap, sockets):
    cap(0)
    for _ in range(60):
        assert (await sockets("203.0.113.9"))[0]
