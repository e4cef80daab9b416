from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from channels.layers import channel_layers
from django.conf import settings as django_settings
from django.contrib.sessions.backends.db import SessionStore
from django.core.cache import cache

from verification import runtime
from verification.gateway.fake import FakeGateway
from verification.models import SenderAccount
from verification.testing import VerificationTab

FAKE_CONFIG = {
    "GATEWAY": "verification.gateway.fake.FakeGateway",
    "EMBEDDED_WORKER": True,
    "EMBEDDED_SANDBOX": False,
    "TELEGRAM_SERVER": "",
    "TELEGRAM_SERVER_PUBLIC_KEY": "",
    "LEASE_SECONDS": 30,
    "ALLOW_TEST_NUMBERS": True,
}


@pytest.fixture(autouse=True)
def _fresh_channel_layer_and_cache() -> None:
    # The in-memory layer's queues belong to one event loop; every test gets its own loop.
    channel_layers.backends = {}
    # Rate-limit counters and flood waits live in the cache.
    cache.clear()


@pytest.fixture
def fake_settings(settings: Any) -> Any:
    """The app wired to the in-memory fake gateway, with its worker embedded."""
    settings.VERIFICATION = {**django_settings.VERIFICATION, **FAKE_CONFIG}
    FakeGateway.reset()
    yield settings
    FakeGateway.reset()


@pytest_asyncio.fixture
async def stop_runtime() -> AsyncIterator[None]:
    yield
    await runtime.shutdown()


@pytest.fixture
def make_sender() -> Callable[..., SenderAccount]:
    def make(phone_number: str = "+9996610000", session: str = "fake-session") -> SenderAccount:
        return SenderAccount.objects.create(phone_number=phone_number, session=session)

    return make


# The test kit's tab, shipped for host projects, is the one the suite uses.
Tab = VerificationTab


@pytest_asyncio.fixture
async def browser_session() -> Callable[..., Any]:
    """A factory of Django sessions (what loading the page gives a browser)."""

    async def make() -> str:
        store = SessionStore()
        await database_sync_to_async(store.create)()
        return store.session_key

    return make


@pytest_asyncio.fixture
async def open_tab(stop_runtime: None) -> AsyncIterator[Callable[..., Any]]:
    tabs: list[Tab] = []

    async def open_(session_key: str) -> tuple[Tab, dict[str, Any]]:
        tab = Tab(session_key)
        tabs.append(tab)
        first = await tab.connect()
        return tab, first

    yield open_
    for tab in tabs:
        await tab.close()
