"""pytest plugin: run your project's tests against the local Telegram sandbox.

Enable it in your top-level ``conftest.py``::

    pytest_plugins = ["verification.testing"]

Fixtures:

``telegram_sandbox`` (session)
    A running `verification.sandbox.SandboxThread` on a free port, with a 2 s resend timeout and
    a 60 s code lifetime. Use it to read codes (``last_code``, ``inbox``, ``wait_for_code``,
    ``await_code``) and to inject faults (``inject_error``, ``inject_delay``,
    ``drop_connections``).

``sandbox_settings`` (function, needs pytest-django)
    Points ``settings.VERIFICATION`` at the sandbox (``TELEGRAM_SERVER``,
    ``TELEGRAM_SERVER_PUBLIC_KEY``, ``TELEGRAM_API_ID``, ``TELEGRAM_API_HASH``) for one test and
    returns the same `SandboxThread`.

``sandbox_sender`` (function, needs a database)
    Signs a fresh sandbox account in through the real Telethon gateway and stores it as a
    `SenderAccount`, so the (embedded) Telegram worker sends codes from it.

``verification_tab`` (function, async, needs pytest-asyncio)
    ``await verification_tab()`` opens the app's WebSocket the way a browser tab does, with a
    Django session of its own (or ``verification_tab(session_key)`` for a second tab of the
    same session); gives a `VerificationTab`. The embedded worker is stopped afterwards.

Only the sandbox package and the app's public settings keys are used here, so the plugin works
in any project that installs the app.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

from verification.sandbox import SandboxThread

__all__ = [
    "SANDBOX_CODE_LIFETIME",
    "SANDBOX_RESEND_TIMEOUT",
    "VerificationTab",
    "sandbox_sender",
    "sandbox_settings",
    "telegram_sandbox",
    "verification_tab",
]

SANDBOX_RESEND_TIMEOUT = 2.0
SANDBOX_CODE_LIFETIME = 60.0


@pytest.fixture(scope="session")
def telegram_sandbox() -> Iterator[SandboxThread]:
    """One sandbox for the whole test session (fresh accounts, in-memory state)."""
    thread = SandboxThread(
        "127.0.0.1",
        0,
        resend_timeout=SANDBOX_RESEND_TIMEOUT,
        code_lifetime=SANDBOX_CODE_LIFETIME,
    )
    thread.start()
    try:
        yield thread
    finally:
        thread.stop()


@pytest.fixture
def sandbox_settings(
    telegram_sandbox: SandboxThread, settings: Any, tmp_path: Path
) -> SandboxThread:
    """Point the app at the sandbox for this test (pytest-django's ``settings`` restores it)."""
    key_file = tmp_path / "telegram-sandbox.pem"
    key_file.write_text(telegram_sandbox.public_key_pem)
    existing = getattr(settings, "VERIFICATION", None) or {}
    settings.VERIFICATION = {
        **existing,
        "TELEGRAM_SERVER": telegram_sandbox.address,
        "TELEGRAM_SERVER_PUBLIC_KEY": str(key_file),
        "TELEGRAM_API_ID": 1,
        "TELEGRAM_API_HASH": "sandbox",
        # This sandbox, not one embedded in the web process.
        "EMBEDDED_SANDBOX": False,
    }
    return telegram_sandbox


_sender_numbers = itertools.count(secrets.randbelow(500))


@pytest.fixture
def sandbox_sender(sandbox_settings: SandboxThread, transactional_db: Any) -> Any:
    """A sender account signed in to the sandbox (a fresh ``+99966 1 7YYY`` number)."""
    from verification import services
    from verification.app_settings import get_config
    from verification.gateway import settings_derived_options
    from verification.gateway.telethon_gateway import TelethonGateway

    phone = f"+999661{7000 + next(_sender_numbers) % 1000}"

    async def sign_in() -> Any:
        gateway = TelethonGateway(**settings_derived_options(get_config()))
        try:
            await gateway.login_send_code("verification.testing", phone)
            code = sandbox_settings.last_code(phone)
            assert code is not None, f"the sandbox sent no code to {phone}"
            return await gateway.login_sign_in("verification.testing", code)
        finally:
            await gateway.close_all()

    return services.sender_account_save(result=asyncio.run(sign_in()))


class VerificationTab:
    """One browser tab on the app's WebSocket (protocol v1), for tests."""

    def __init__(self, session_key: str, *, path: str = "/ws/verification/") -> None:
        from channels.auth import AuthMiddlewareStack
        from channels.routing import URLRouter
        from channels.testing import WebsocketCommunicator

        from verification.routing import websocket_urlpatterns

        self.session_key = session_key
        self.first_frame: dict[str, Any] = {}
        self.communicator = WebsocketCommunicator(
            AuthMiddlewareStack(URLRouter(websocket_urlpatterns)),
            path,
            headers=[(b"cookie", f"sessionid={session_key}".encode()), (b"host", b"localhost")],
        )

    async def connect(self) -> dict[str, Any]:
        """Connect; returns the first frame (``state``)."""
        connected, _ = await self.communicator.connect(timeout=10)
        assert connected, "the verification socket refused the connection"
        return await self.receive()

    async def send(self, **frame: Any) -> None:
        await self.communicator.send_to(text_data=json.dumps(frame))

    async def send_raw(self, text: str) -> None:
        """Send text as it is (for malformed-frame tests)."""
        await self.communicator.send_to(text_data=text)

    async def receive(self, wait: float = 5) -> dict[str, Any]:
        return json.loads(await self.communicator.receive_from(timeout=wait))

    async def receive_until(self, kind: str, wait: float = 10) -> dict[str, Any]:
        """Frames until one of type ``kind`` arrives (earlier ones are skipped)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            frame = await self.receive(max(0.1, deadline - loop.time()))
            if frame["type"] == kind:
                return frame

    async def nothing(self, wait: float = 0.3) -> bool:
        """Whether no frame arrives within ``wait`` seconds."""
        return await self.communicator.receive_nothing(timeout=wait)

    async def close(self) -> None:
        await self.communicator.disconnect()


@pytest_asyncio.fixture
async def verification_tab() -> AsyncIterator[Callable[..., Any]]:
    """``await verification_tab(session_key=None)`` → a connected `VerificationTab`."""
    from channels.db import database_sync_to_async
    from django.contrib.sessions.backends.db import SessionStore

    from verification import runtime

    tabs: list[VerificationTab] = []

    async def open_tab(session_key: str | None = None) -> VerificationTab:
        if session_key is None:
            store = SessionStore()
            await database_sync_to_async(store.create)()
            session_key = store.session_key
            assert session_key is not None  # create() saved the session under a new key
        tab = VerificationTab(session_key)
        tabs.append(tab)
        tab.first_frame = await tab.connect()
        return tab

    yield open_tab
    for tab in tabs:
        await tab.close()
    await runtime.shutdown()
