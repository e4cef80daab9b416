"""Fixtures and helpers shared by the suite; the app's own test kit comes in as a plugin."""

from __future__ import annotations

import os
import re
import shutil
import socket
import time
import urllib.request
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import psycopg
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

pytest_plugins = ["verification.testing"]

ROOT = Path(__file__).resolve().parent.parent
POSTGRES = "postgres://postgres@127.0.0.1:5432"
REDIS = "redis://127.0.0.1:6379"
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
    # The test kit's tab, shipped for host projects, is the one the suite uses. Imported here:
    # importing the plugin before pytest loads it would skip its assertion rewriting.
    from verification.testing import VerificationTab

    tabs: list[VerificationTab] = []

    async def open_(session_key: str) -> tuple[VerificationTab, dict[str, Any]]:
        tab = VerificationTab(session_key)
        tabs.append(tab)
        first = await tab.connect()
        return tab, first

    yield open_
    for tab in tabs:
        await tab.close()


# Services and processes --------------------------------------------------------------------------


def service_missing(reason: str) -> None:
    """Skip a test whose service (PostgreSQL, Redis) is missing; under CI it is required."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (required under CI=true)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def postgres() -> str:
    """The URL of a PostgreSQL server the test may create databases on."""
    try:
        with psycopg.connect(f"{POSTGRES}/postgres", connect_timeout=2):
            return POSTGRES
    except psycopg.OperationalError as exc:
        service_missing(f"PostgreSQL is not reachable at {POSTGRES}: {exc}")
        raise


@pytest.fixture(scope="session")
def redis() -> str:
    """The URL of a running Redis server (without a database number)."""
    try:
        with socket.create_connection(("127.0.0.1", 6379), timeout=2) as sock:
            sock.sendall(b"PING\r\n")
            if sock.recv(16).startswith(b"+PONG"):
                return REDIS
    except OSError:
        pass
    service_missing(f"Redis is not reachable at {REDIS}")
    raise AssertionError("unreachable")


@pytest.fixture(scope="session")
def redis_server_command() -> str:
    """The path of ``redis-server``, for tests that run (and stop) a Redis of their own."""
    command = shutil.which("redis-server")
    if command is None:
        service_missing("redis-server is not installed")
    return str(command)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _wait_until(predicate: Callable[[], Any], *, timeout: float = 20.0, what: str = "it") -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if value := predicate():
            return value
        time.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


@pytest.fixture(scope="session")
def free_port() -> Callable[[], int]:
    """``free_port()``: a TCP port on 127.0.0.1 nothing listens on."""
    return _free_port


def _cookie(response: Any, name: str) -> str:
    for header in response.headers.get_all("Set-Cookie") or []:
        cookie = header.split(";")[0]
        if cookie.startswith(f"{name}="):
            return cookie
    raise AssertionError(f"no {name} cookie was set")


def _page_session(port: int) -> str:
    url = f"http://127.0.0.1:{port}"
    page = urllib.request.urlopen(f"{url}/", timeout=10)
    csrf = _cookie(page, "csrftoken")
    # Loading writes no session: the page asks for one when the visitor first acts.
    request = urllib.request.Request(
        f"{url}/session/",
        method="POST",
        headers={"Cookie": csrf, "X-CSRFToken": csrf.split("=", 1)[1]},
    )
    return _cookie(urllib.request.urlopen(request, timeout=10), "sessionid")


@pytest.fixture(scope="session")
def page_session() -> Callable[[int], str]:
    """``page_session(port)``: load the page of the site on ``port`` and act in it, as a
    browser does; the ``sessionid=…`` cookie the page's session endpoint gives."""
    return _page_session


@pytest.fixture(scope="session")
def wait_until() -> Callable[..., Any]:
    """``wait_until(predicate, timeout=20, what=...)``: ``predicate()``'s first truthy value,
    polled every 0.1 s; fails with ``what`` when the time is up."""
    return _wait_until


def _site_variables() -> set[str]:
    example = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#? ?([A-Z][A-Z0-9_]*)=", example, flags=re.MULTILINE))


@pytest.fixture(scope="session")
def site_environment() -> Callable[..., dict[str, str]]:
    """``site_environment(**variables)``: the environment of a passportsite process a test
    starts. The developer's site variables (and ``.env``) are left out, so only ``variables``
    and the site's defaults apply."""
    site_variables = _site_variables()

    def make(**variables: str) -> dict[str, str]:
        inherited = {k: v for k, v in os.environ.items() if k not in site_variables}
        return {
            **inherited,
            "DJANGO_SETTINGS_MODULE": "passportsite.settings",
            "ENV_FILE": os.devnull,
            "DEBUG": "1",
            "ALLOWED_HOSTS": "127.0.0.1",
            "PYTHONUNBUFFERED": "1",
            # Every test visits from 127.0.0.1: the challenge and the new-session limit would
            # otherwise hold the address after a few sessions (tests/test_challenges.py and
            # tests/test_sessions.py test them).
            "VERIFICATION_CHALLENGE_AFTER": "off",
            "VERIFICATION_NEW_SESSIONS_LIMIT": "off",
            **variables,
        }

    return make
