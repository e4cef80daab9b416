"""Attacks on the visitor's socket: frame floods, cookie-less sockets, forged addresses, and a
socket left over from before the visitor signed in."""

from __future__ import annotations

import asyncio
import json
import time

import pytest
from channels.db import database_sync_to_async
from django.core.checks import run_checks

from verification.addresses import forwarded_client
from verification.gateway.fake import FakeGateway
from verification.models import PhoneVerification

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]

PHONE = "+9996621234"


@pytest.fixture
def ready(fake_settings, make_sender):
    FakeGateway.resend_timeout = 60
    make_sender()
    return fake_settings


async def closed_with(tab, wait: float = 5) -> int | None:
    """The close code the server sent this tab, skipping the frames before it."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait
    while True:
        output = await tab.communicator.receive_output(max(0.1, deadline - loop.time()))
        if output["type"] == "websocket.close":
            return output.get("code")


# Frame floods ------------------------------------------------------------------------------------


async def test_a_frame_flood_closes_the_socket_and_queues_nothing(ready, open_tab, browser_session):
    """One socket sends 5,000 frames without reading: it is closed with 4008, the frames it sent
    are read off the server's queue at once (not worked through), and another visitor's round
    trip stays short meanwhile."""
    flooder, _ = await open_tab(await browser_session())
    other, _ = await open_tab(await browser_session())
    frame = json.dumps({"type": "state"})
    for _ in range(5000):
        await flooder.communicator.send_to(text_data=frame)
    # Read as fast as they came: nothing waits in the server's queue.
    await asyncio.sleep(0.2)
    assert flooder.communicator.input_queue.qsize() == 0
    started = time.monotonic()
    await other.send(type="state")
    assert (await other.receive())["type"] == "state"
    assert time.monotonic() - started < 0.5
    assert await closed_with(flooder) == 4008
    answered = 0
    while not flooder.communicator.output_queue.empty():
        answered += flooder.communicator.output_queue.get_nowait()["type"] == "websocket.send"
    # The burst was answered; the rest were dropped unread.
    assert answered <= 40


async def test_a_socket_within_its_budget_is_not_closed(ready, open_tab, browser_session, settings):
    settings.VERIFICATION = {**settings.VERIFICATION, "FRAME_RATE": 100, "FRAME_BURST": 10}
    tab, _ = await open_tab(await browser_session())
    for _ in range(30):
        await tab.send(type="state")
        assert (await tab.receive())["type"] == "state"
        await asyncio.sleep(0.02)


# Cookie-less sockets -----------------------------------------------------------------------------


async def test_a_socket_without_a_session_cannot_send(ready, stop_runtime):
    """Every cookie-less socket would be a new owner with a fresh session limit."""
    from verification.testing import VerificationTab

    tabs = [VerificationTab("") for _ in range(3)]
    try:
        for tab in tabs:
            tab.communicator.scope["headers"] = [(b"host", b"localhost")]
            assert (await tab.connect())["verification"] is None
            await tab.send(type="send_code", phone_number=PHONE)
            error = await tab.receive()
            assert error["code"] == "SESSION_REQUIRED"
            assert error["message"]
    finally:
        for tab in tabs:
            await tab.close()
    assert not await PhoneVerification.objects.aexists()


async def answer(tab) -> dict:
    """The first ``code_sent`` or ``error`` frame."""
    while (frame := await tab.receive())["type"] not in {"code_sent", "error"}:
        pass
    return frame


# Client addresses --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "client"),
    [
        # No proxies trusted: the header is the client's word and is ignored.
        ("203.0.113.7", "1.2.3.4", 0, "203.0.113.7"),
        # One proxy: the entry it appended, whatever the client put left of it.
        ("10.0.0.2", "1.2.3.4, 198.51.100.9", 1, "198.51.100.9"),
        ("10.0.0.2", "1.2.3.4, 5.6.7.8, 198.51.100.9", 1, "198.51.100.9"),
        # Two proxies.
        ("10.0.0.2", "1.2.3.4, 198.51.100.9, 10.0.0.1", 2, "198.51.100.9"),
        # Fewer entries than proxies: the left-most hop known.
        ("10.0.0.2", "", 1, "10.0.0.2"),
        # A list: the right-most hop that is not one of them.
        ("10.0.0.2", "1.2.3.4, 198.51.100.9, 10.0.0.1", ["10.0.0.0/8"], "198.51.100.9"),
        ("203.0.113.7", "1.2.3.4", ["10.0.0.0/8"], "203.0.113.7"),
        ("10.0.0.2", "2001:db8::5", ["10.0.0.2"], "2001:db8::5"),
        # Nonsense where the visitor should be: the proxy that forwarded it.
        ("10.0.0.2", "1.2.3.4, nonsense", 1, "10.0.0.2"),
        ("10.0.0.2", "nonsense", ["10.0.0.2"], "10.0.0.2"),
    ],
)
async def test_the_client_is_the_right_most_untrusted_hop(peer, forwarded, trusted, client):
    assert forwarded_client(peer=peer, forwarded_for=forwarded, trusted=trusted) == client


async def test_forged_forwarded_for_entries_do_not_dodge_the_address_limit(
    ready, stop_runtime, browser_session, settings
):
    """Behind one proxy, a client that writes a new X-Forwarded-For entry for every send is
    still counted by the address the proxy saw."""
    from verification.testing import VerificationTab

    settings.VERIFICATION = {
        **settings.VERIFICATION,
        "TRUSTED_PROXIES": 1,
        "RATE_LIMITS": {"ip": (3, 3600), "session": None, "phone": None},
    }
    answers = []
    for n in range(5):
        tab = VerificationTab(await browser_session())
        forwarded = f"192.0.2.{n}, 198.51.100.9".encode()
        tab.communicator.scope["headers"].append((b"x-forwarded-for", forwarded))
        tab.communicator.scope["client"] = ["10.0.0.2", 40000 + n]
        try:
            await tab.connect()
            await tab.send(type="send_code", phone_number=PHONE)
            answers.append(await answer(tab))
        finally:
            await tab.close()
    assert [answer.get("code") for answer in answers] == [None, None, None] + ["RATE_LIMITED"] * 2
    recorded = {v.ip_address async for v in PhoneVerification.objects.all()}
    assert recorded == {"198.51.100.9"}


# The owner after signing in ----------------------------------------------------------------------


async def sign_in(session_key: str, user) -> str:
    """Sign ``user`` in on the browser holding ``session_key``, as the login view does; returns
    the session key the browser holds afterwards."""
    from django.contrib.auth import login
    from django.contrib.sessions.backends.db import SessionStore
    from django.test import RequestFactory

    def run() -> str:
        request = RequestFactory().post("/login/")
        request.session = SessionStore(session_key)
        request.session.load()
        from django.contrib.auth.models import AnonymousUser

        request.user = AnonymousUser()
        login(request, user, backend="django.contrib.auth.backends.ModelBackend")
        request.session.save()
        return request.session.session_key

    return await database_sync_to_async(run)()


async def test_a_socket_from_before_sign_in_is_closed_and_sees_nothing_after(
    ready, open_tab, browser_session, django_user_model
):
    from verification.testing import VerificationTab

    user = await django_user_model.objects.acreate_user("visitor", password="pw")
    before = await browser_session()
    # The page gives the session its owner token, as loading it does.
    from django.contrib.sessions.backends.db import SessionStore

    from verification.owners import session_owner

    await database_sync_to_async(lambda: session_owner(SessionStore(before)))()
    old, _ = await open_tab(before)
    after = await sign_in(before, user)
    assert await closed_with(old) == 4403
    tab, state = await open_tab(after)
    assert state["verification"] is None
    await tab.send(type="send_code", phone_number=PHONE)
    await tab.receive_until("code_sent")
    # A socket that still holds the old session key acts on nothing of the user's.
    stale = VerificationTab(before)
    try:
        first = await stale.connect()
        assert first["verification"] is None
        await stale.send(type="verify", code="22222")
        assert (await stale.receive())["code"] == "NO_ACTIVE_VERIFICATION"
    finally:
        await stale.close()
    await tab.send(type="verify", code="22222")
    assert (await tab.receive_until("verified"))["verification"]["status"] == "verified"


async def test_a_socket_acts_on_nothing_once_its_owner_is_revoked(ready, open_tab, browser_session):
    """Even before the close reaches it (the group message is still on its way)."""
    from django.core.cache import cache

    from verification.owners import _revoked_key

    tab, _ = await open_tab(await browser_session())
    await tab.send(type="send_code", phone_number=PHONE)
    sent = await tab.receive_until("code_sent")
    owner = (await PhoneVerification.objects.aget(pk=sent["verification"]["id"])).owner
    # Revoked in the cache only: no close is sent to the socket.
    await cache.aset(_revoked_key(owner), 1)
    await tab.send(type="cancel")
    assert await closed_with(tab) == 4403
    assert (await PhoneVerification.objects.aget()).status == "code_sent"


# Checks ------------------------------------------------------------------------------------------


async def test_deploy_check_warns_when_no_region_is_restricted(settings):
    settings.VERIFICATION = {**settings.VERIFICATION, "EMBEDDED_SANDBOX": True}
    ids = {m.id for m in await database_sync_to_async(run_checks)(include_deployment_checks=True)}
    assert "verification.W060" in ids
    settings.VERIFICATION = {**settings.VERIFICATION, "ALLOWED_REGIONS": ["GB"]}
    ids = {m.id for m in await database_sync_to_async(run_checks)(include_deployment_checks=True)}
    assert "verification.W060" not in ids
    assert "verification.W060" not in {m.id for m in await database_sync_to_async(run_checks)()}


@pytest.mark.parametrize("trusted", [-1, ["10.0.0.0/8", "proxy.example"]])
async def test_trusted_proxies_are_checked(settings, trusted):
    settings.VERIFICATION = {
        **settings.VERIFICATION,
        "EMBEDDED_SANDBOX": True,
        "TRUSTED_PROXIES": trusted,
    }
    ids = [m.id for m in await database_sync_to_async(run_checks)()]
    assert ids.count("verification.E013") == 1
