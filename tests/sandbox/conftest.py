"""Fixtures for the sandbox suite: one sandbox per session and Telethon clients bound to it.

These tests talk to the sandbox exactly as the app does: the unmodified Telethon client over
TCP, with the sandbox's RSA key added and the session pointed at its address.
"""

from __future__ import annotations

import contextlib
import itertools
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import pytest
import pytest_asyncio
from telethon import TelegramClient
from telethon.crypto import rsa
from telethon.network.connection import ConnectionTcpFull
from telethon.sessions import StringSession

from verification.sandbox import SandboxThread

# Whole-suite budget is under a minute; a single hung test must not eat it.
TEST_TIMEOUT = 20

_tails = itertools.count(1000)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/sandbox/" in item.nodeid.replace("\\", "/") and not item.get_closest_marker(
            "timeout"
        ):
            item.add_marker(pytest.mark.timeout(TEST_TIMEOUT))


@pytest.fixture(scope="session")
def sandbox() -> Iterator[SandboxThread]:
    """A sandbox shared by the suite: 1 s resend timeout, 30 s code lifetime."""
    with SandboxThread(resend_timeout=1, code_lifetime=30) as thread:
        rsa.add_key(thread.public_key_pem, old=False)
        yield thread


@pytest.fixture
def phone() -> Callable[..., str]:
    """``phone(x=2, tail=None)`` → a fresh ``+99966XYYYY`` number (unique tail per call)."""

    def make(x: int = 2, tail: str | None = None) -> str:
        # Tails 1000-7999 are plain test numbers; 8xxx (2FA) and 900N (scenarios) are special.
        return f"+99966{x}{tail or next(_tails) % 7000 + 1000:04}"

    return make


ClientFactory = Callable[..., Awaitable[TelegramClient]]


def make_client(
    port: int, session: str | None = None, connection: type = ConnectionTcpFull
) -> TelegramClient:
    """A client configured the way the app configures it."""
    client = TelegramClient(
        StringSession(session),
        1,
        "sandbox",
        connection=connection,
        receive_updates=False,
        flood_sleep_threshold=0,
        raise_last_call_error=True,
    )
    if not session:
        client.session.set_dc(2, "127.0.0.1", port)
    return client


@pytest_asyncio.fixture
async def connect(sandbox: SandboxThread) -> AsyncIterator[ClientFactory]:
    """``await connect(session=None, connection=..., port=None)`` → a connected client."""
    clients: list[TelegramClient] = []

    async def factory(
        session: str | None = None,
        connection: type = ConnectionTcpFull,
        port: int | None = None,
    ) -> TelegramClient:
        client = make_client(port or sandbox.port, session, connection)
        clients.append(client)
        await client.connect()
        return client

    yield factory
    for client in clients:
        with contextlib.suppress(Exception):
            await client.disconnect()


@pytest_asyncio.fixture
async def signed_in(
    sandbox: SandboxThread, connect: ClientFactory, phone: Callable[..., str]
) -> Callable[..., Awaitable[TelegramClient]]:
    """``await signed_in(number=None)`` → a client signed in as a (fresh) test number."""

    async def factory(number: str | None = None, **kwargs: object) -> TelegramClient:
        number = number or phone()
        client = await connect(**kwargs)
        sent = await client.send_code_request(number)
        code = sandbox.last_code(number)
        await client.sign_in(number, code, phone_code_hash=sent.phone_code_hash)
        return client

    return factory


@pytest.fixture
def new_client() -> Callable[..., TelegramClient]:
    """``new_client(port, session=None, connection=...)``: an unconnected, app-configured client."""
    return make_client
