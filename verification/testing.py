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

Only the sandbox package and the app's public settings keys are used here, so the plugin works
in any project that installs the app.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from verification.sandbox import SandboxThread

__all__ = [
    "SANDBOX_CODE_LIFETIME",
    "SANDBOX_RESEND_TIMEOUT",
    "sandbox_settings",
    "telegram_sandbox",
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
    }
    return telegram_sandbox
