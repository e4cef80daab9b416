"""The Telegram worker's parts under real concurrency: the keyed lock, lease fencing, account
floods failing over, handlers that crash, and sender sign-ins nobody finishes."""

from __future__ import annotations

import asyncio
import itertools
import random
import secrets
import time
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.db import DatabaseError
from django.utils import timezone

from verification import services
from verification.db import db
from verification.errors import ErrorCode
from verification.gateway import GatewayError, gateway_from_settings, telethon_gateway
from verification.gateway.fake import FakeGateway
from verification.models import PhoneVerification, SenderAccount, VerificationEvent
from verification.worker.leases import LeaseKeeper, LeaseLost
from verification.worker.locks import KeyedLock

pytestmark = pytest.mark.asyncio

PHONE = "+9996621234"
OWNER = "verification.worker.test!x"
FLOOD = {"retry_after": 30, "telegram_error": "FloodWaitError"}

# Fresh sandbox numbers for senders signed in here (+99966 1 6YYY).
_sandbox_numbers = itertools.count(secrets.randbelow(500))


def sandbox_number() -> str:
    return f"+999661{6000 + next(_sandbox_numbers) % 1000}"


# The keyed lock --------------------------------------------------------------------------------


class Occupancy:
    """Counts who is inside a critical section, per key and overall."""

    def __init__(self) -> None:
        self.inside: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.overall = 0
        self.most_overall = 0
        self.order: list[str] = []

    async def hold(self, key: str, name: str, seconds: float) -> None:
        self.inside[key] = self.inside.get(key, 0) + 1
        self.overall += 1
        self.most[key] = max(self.most.get(key, 0), self.inside[key])
        self.most_overall = max(self.most_overall, self.overall)
        self.order.append(name)
        await asyncio.sleep(seconds)
        await asyncio.sleep(0)
        self.inside[key] -= 1
        self.overall -= 1


async def test_keyed_lock_arrival_after_the_holder_left_waits_for_the_waiter():
    """Holder → waiter → a new arrival once the holder left: the arrival must not find a fresh
    lock while the woken waiter is about to run (the old map dropped the lock right then)."""
    locks = KeyedLock()
    seen = Occupancy()
    leave = asyncio.Event()

    async def holder() -> None:
        async with locks("v"):
            await leave.wait()

    async def user(name: str) -> None:
        async with locks("v"):
            await seen.hold("v", name, 0.05)

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    waiter = asyncio.create_task(user("waiter"))
    await asyncio.sleep(0)
    assert len(locks) == 1
    leave.set()
    await first
    arrival = asyncio.create_task(user("arrival"))
    await asyncio.gather(waiter, arrival)
    assert seen.most["v"] == 1
    assert seen.order == ["waiter", "arrival"]
    assert len(locks) == 0


async def test_keyed_lock_many_tasks_one_key_at_a_time():
    locks = KeyedLock()
    seen = Occupancy()
    rng = random.Random(7)

    async def user(key: str, name: str, start: float, hold: float) -> None:
        await asyncio.sleep(start)
        async with locks(key):
            await seen.hold(key, name, hold)

    tasks = [
        asyncio.create_task(
            user(key, f"{key}{n}", rng.choice([0, 0, 0.001, 0.003]), rng.choice([0, 0.001, 0.002]))
        )
        for n in range(40)
        for key in ("a", "b", "c")
    ]
    await asyncio.gather(*tasks)
    assert len(seen.order) == 120
    assert seen.most == {"a": 1, "b": 1, "c": 1}
    # Different keys really ran side by side: the lock is per key, not global.
    assert seen.most_overall > 1
    assert len(locks) == 0


async def test_keyed_lock_cancelled_waiter_leaves_no_entry():
    locks = KeyedLock()
    leave = asyncio.Event()

    async def holder() -> None:
        async with locks("v"):
            await leave.wait()

    async def waiter() -> None:
        async with locks("v"):
            pass

    first = asyncio.create_task(holder())
    await asyncio.sleep(0)
    second = asyncio.create_task(waiter())
    await asyncio.sleep(0)
    second.cancel()
    await asyncio.gather(second, return_exceptions=True)
    assert len(locks) == 1
    leave.set()
    await first
    assert len(locks) == 0


# Leases and fencing ----------------------------------------------------------------------------


@pytest.fixture
def lease_settings(fake_settings):
    """The database lease lasts as long as the keeper's (2 s)."""
    fake_settings.VERIFICATION = {**fake_settings.VERIFICATION, "LEASE_SECONDS": 2}
    return fake_settings


def refuse_renewals_of(owner: str, *, after: int = 0):
    """``services.sender_account_leases_renew``, refusing ``owner`` after ``after`` renewals."""
    real = services.sender_account_leases_renew
    calls = {owner: 0}

    def renew(*, owner: str, used=None):
        if owner in calls:
            calls[owner] += 1
            if calls[owner] > after:
                raise DatabaseError("the database refuses the lease renewal")
        return real(owner=owner, used=used)

    return real, renew


async def take_over(renew, account_id: int) -> float:
    """Another worker asks for leases until it gets ``account_id``; when it got it."""
    while True:
        held = await db(renew)(owner="verification.worker.test!other")
        if any(account.pk == account_id for account in held):
            return time.time()
        await asyncio.sleep(0.02)


@pytest.mark.django_db(transaction=True)
async def test_lapsing_lease_cuts_calls_and_closes_before_another_worker_takes_it(
    lease_settings, make_sender, monkeypatch
):
    account = await database_sync_to_async(make_sender)()
    gateway = FakeGateway()
    keeper = LeaseKeeper(owner=OWNER, gateway=gateway, lease_seconds=2, open_timeout=5)
    await keeper.renew(wait_for_clients=True)
    assert keeper.held == {account.pk}
    row = await SenderAccount.objects.aget(pk=account.pk)
    assert row.lease_owner == OWNER
    valid_until = row.lease_expires_at.timestamp()

    real, refusing = refuse_renewals_of(OWNER)
    monkeypatch.setattr(services, "sender_account_leases_renew", refusing)
    taker = asyncio.create_task(take_over(real, account.pk))
    outbox = list(FakeGateway.outbox)
    # Telegram would take far longer than the lease has left.
    FakeGateway.delay = 10
    withdrawn: list[float] = []

    async def send(account_id: int, phone_number: str):
        try:
            return await gateway.send_verify_code(account_id, phone_number)
        except asyncio.CancelledError:
            withdrawn.append(time.time())
            raise

    try:
        in_flight = asyncio.create_task(keeper.call(account.pk, time.time() + 30, send, PHONE))
        with pytest.raises(DatabaseError):
            await keeper.renew()
        # The renewal failed, but the fence is still ahead: the client stays open for now.
        await keeper.fence()
        assert gateway.is_open(account.pk)

        # (a) The call in flight is given up at the fence, before the lease's safety margin.
        async with asyncio.timeout(4):
            with pytest.raises(GatewayError) as cut:
                await in_flight
        cut_at = time.time()
        assert cut.value.telegram_error in {"REQUEST_TIMEOUT", "LEASE_LOST"}
        # Withdrawn at the fence, which is set before the database write, so it falls before
        # the lease's end less the margin (give or take the event loop's timer slack).
        assert len(withdrawn) == 1
        assert withdrawn[0] <= valid_until - keeper.margin + 0.05
        assert FakeGateway.outbox == outbox

        # (b) Past the fence, fencing closes the client while the database lease still runs.
        await keeper.fence()
        closed_at = time.time()
        assert not gateway.is_open(account.pk)
        assert keeper.held == set()
        assert closed_at < valid_until
        assert not taker.done()

        # (c) No new call starts.
        FakeGateway.delay = 0
        with pytest.raises(LeaseLost):
            await keeper.call(account.pk, time.time() + 30, gateway.send_verify_code, PHONE)
        assert FakeGateway.outbox == outbox

        # (d) Another worker gets the account only once the database lease lapsed.
        async with asyncio.timeout(5):
            taken_at = await taker
        assert taken_at >= valid_until
        assert taken_at > closed_at > cut_at
        row = await SenderAccount.objects.aget(pk=account.pk)
        assert row.lease_owner == "verification.worker.test!other"
    finally:
        FakeGateway.delay = 0
        taker.cancel()
        await asyncio.gather(taker, return_exceptions=True)


@pytest.mark.django_db(transaction=True)
async def test_keeper_loop_closes_the_client_before_the_lease_lapses(
    lease_settings, make_sender, monkeypatch
):
    """The keeper's own loop: renewals start failing, and it fences in time."""
    account = await database_sync_to_async(make_sender)()
    gateway = FakeGateway()
    keeper = LeaseKeeper(owner=OWNER, gateway=gateway, lease_seconds=2, open_timeout=5)
    real, refusing = refuse_renewals_of(OWNER, after=1)
    monkeypatch.setattr(services, "sender_account_leases_renew", refusing)
    loop = asyncio.create_task(keeper.run())
    taker = None
    try:
        async with asyncio.timeout(2):
            while not gateway.is_open(account.pk):
                await asyncio.sleep(0.005)
        row = await SenderAccount.objects.aget(pk=account.pk)
        assert row.lease_owner == OWNER
        valid_until = row.lease_expires_at.timestamp()
        taker = asyncio.create_task(take_over(real, account.pk))
        async with asyncio.timeout(4):
            while gateway.is_open(account.pk):
                await asyncio.sleep(0.005)
        closed_at = time.time()
        assert closed_at < valid_until
        assert not taker.done()
        with pytest.raises(LeaseLost):
            await keeper.call(account.pk, time.time() + 30, gateway.send_verify_code, PHONE)
        async with asyncio.timeout(5):
            taken_at = await taker
        assert taken_at >= valid_until > closed_at
    finally:
        for task in (loop, taker):
            if task is not None:
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)


@pytest.mark.django_db(transaction=True)
async def test_slow_connect_does_not_delay_renewal(lease_settings, make_sender):
    account = await database_sync_to_async(make_sender)()
    gateway = FakeGateway()
    keeper = LeaseKeeper(owner=OWNER, gateway=gateway, lease_seconds=2, open_timeout=5)
    # gateway.open takes a second (it goes through the same scripted delay).
    FakeGateway.delay = 1.0
    try:
        async with asyncio.timeout(0.5):
            await keeper.renew()
        first = await SenderAccount.objects.aget(pk=account.pk)
        assert first.lease_owner == OWNER
        assert first.lease_expires_at > timezone.now() + timedelta(seconds=1.5)
        assert not gateway.is_open(account.pk)
        # A renewal while the client is still connecting is just as prompt, and renews.
        await asyncio.sleep(0.3)
        async with asyncio.timeout(0.5):
            await keeper.renew()
        second = await SenderAccount.objects.aget(pk=account.pk)
        assert second.lease_expires_at > first.lease_expires_at
        # The connect still finishes in its own task.
        async with asyncio.timeout(2):
            while keeper.held != {account.pk}:
                await asyncio.sleep(0.01)
    finally:
        FakeGateway.delay = 0
        await keeper.release_all()


# Flood waits -----------------------------------------------------------------------------------


@pytest.fixture
def two_senders(fake_settings, make_sender):
    return make_sender("+9996610000"), make_sender("+9996610001")


@pytest.fixture
def one_sender(fake_settings, make_sender):
    return make_sender("+9996610000")


async def send_code(open_tab, browser_session, phone):
    tab, state = await open_tab(await browser_session())
    assert state["verification"] is None
    await tab.send(type="send_code", phone_number=phone)
    return tab


async def flood_until(account: SenderAccount) -> float | None:
    row = await SenderAccount.objects.aget(pk=account.pk)
    if row.flood_until is None:
        return None
    return (row.flood_until - timezone.now()).total_seconds()


@pytest.mark.django_db(transaction=True)
async def test_account_flood_fails_over_to_the_other_sender(two_senders, open_tab, browser_session):
    FakeGateway.fail_next("send_verify_code", GatewayError(ErrorCode.FLOOD_WAIT, **FLOOD))
    tab = await send_code(open_tab, browser_session, PHONE)
    sending = await tab.receive()
    assert sending["verification"]["status"] == "sending"
    # No error on the way: the code comes from the other account.
    sent = await tab.receive()
    assert sent["type"] == "code_sent", sent
    row = await PhoneVerification.objects.select_related("sender_account").aget(
        pk=sent["verification"]["id"]
    )
    second = row.sender_account
    (flooded,) = [account for account in two_senders if account.pk != second.pk]
    assert 28 <= await flood_until(flooded) <= 30
    assert await flood_until(second) is None
    assert FakeGateway.outbox == [(PHONE, "22222")]
    failover = await VerificationEvent.objects.aget(verification=row, kind="error")
    assert failover.data["sender_account"] == flooded.pk
    assert failover.data["failover_to"] == second.pk
    # The following verifications (round robin would alternate) all go to the other account.
    for phone in ("+9996631234", "+9996641234"):
        tab = await send_code(open_tab, browser_session, phone)
        sent = await tab.receive_until("code_sent")
        next_row = await PhoneVerification.objects.aget(pk=sent["verification"]["id"])
        assert next_row.sender_account_id == second.pk

    # The other account floods too, on two numbers within a wait: it is the account's.
    for phone in ("+9996651234", "+9996661234"):
        FakeGateway.fail_next("send_verify_code", GatewayError(ErrorCode.FLOOD_WAIT, **FLOOD))
        tab = await send_code(open_tab, browser_session, phone)
        error = await tab.receive_until("error")
        assert error["code"] == "FLOOD_WAIT"
        assert error["retry_after"] == 30
    assert 28 <= await flood_until(second) <= 30
    # Every sender is flood-waiting: refused at once, with when the first one is free.
    tab = await send_code(open_tab, browser_session, "+9996671234")
    error = await tab.receive_until("error")
    assert error["code"] == "FLOOD_WAIT"
    assert 25 <= error["retry_after"] <= 30
    assert await PhoneVerification.objects.filter(phone_number="+9996671234").acount() == 0


@pytest.mark.django_db(transaction=True)
async def test_number_flood_is_the_visitors_and_a_second_number_makes_it_the_accounts(
    one_sender, open_tab, browser_session
):
    FakeGateway.fail_next("send_verify_code", GatewayError(ErrorCode.FLOOD_WAIT, **FLOOD))
    tab = await send_code(open_tab, browser_session, PHONE)
    error = await tab.receive_until("error")
    assert error["code"] == "FLOOD_WAIT"
    assert error["retry_after"] == 30
    assert error["verification"]["status"] == "failed"
    # One number flooding says nothing about the account.
    assert await flood_until(one_sender) is None

    FakeGateway.fail_next("send_verify_code", GatewayError(ErrorCode.FLOOD_WAIT, **FLOOD))
    tab = await send_code(open_tab, browser_session, "+9996631234")
    error = await tab.receive_until("error")
    assert error["code"] == "FLOOD_WAIT"
    assert error["retry_after"] == 30
    assert 28 <= await flood_until(one_sender) <= 30
    tab = await send_code(open_tab, browser_session, "+9996641234")
    error = await tab.receive_until("error")
    assert error["code"] == "FLOOD_WAIT"
    assert 25 <= error["retry_after"] <= 30
    assert FakeGateway.outbox == []


@pytest.mark.django_db(transaction=True)
async def test_number_flooded_on_every_sender_flags_no_account(
    two_senders, open_tab, browser_session
):
    FakeGateway.fail_next("send_verify_code", GatewayError(ErrorCode.FLOOD_WAIT, **FLOOD))
    FakeGateway.fail_next("send_verify_code", GatewayError(ErrorCode.FLOOD_WAIT, **FLOOD))
    tab = await send_code(open_tab, browser_session, PHONE)
    error = await tab.receive_until("error")
    assert error["code"] == "FLOOD_WAIT"
    assert error["retry_after"] == 30
    for account in two_senders:
        assert await flood_until(account) is None
    # Both accounts still send to other numbers.
    tab = await send_code(open_tab, browser_session, "+9996631234")
    await tab.receive_until("code_sent")


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
async def test_account_flood_fails_over_through_telethon(
    sandbox_settings,
    settings,
    open_tab,
    browser_session,
):
    settings.VERIFICATION = {
        **settings.VERIFICATION,
        "GATEWAY": "verification.gateway.telethon_gateway.TelethonGateway",
        "EMBEDDED_WORKER": True,
        "ALLOW_TEST_NUMBERS": None,
        "REQUEST_TIMEOUT": 10,
        "LEASE_SECONDS": 30,
    }
    gateway = gateway_from_settings()
    senders = []
    try:
        for _ in range(2):
            phone = sandbox_number()
            await gateway.login_send_code("sender", phone)
            result = await gateway.login_sign_in("sender", sandbox_settings.last_code(phone))
            senders.append(await db(services.sender_account_save)(result=result))
    finally:
        await gateway.close_all()
    tab, _ = await open_tab(await browser_session())
    sandbox_settings.inject_error(
        "account.sendVerifyPhoneCode", "FLOOD_WAIT_30", code=420, phone=None, times=1
    )
    await tab.send(type="send_code", phone_number="+9996681234")
    sending = await tab.receive()
    assert sending["verification"]["status"] == "sending"
    sent = await tab.receive(wait=10)
    assert sent["type"] == "code_sent", sent
    row = await PhoneVerification.objects.aget(pk=sent["verification"]["id"])
    (flooded,) = [account for account in senders if account.pk != row.sender_account_id]
    assert 28 <= await flood_until(flooded) <= 30
    await tab.send(type="verify", code=sandbox_settings.last_code("+9996681234"))
    verified = await tab.receive_until("verified")
    assert verified["verification"]["status"] == "verified"


# A handler that crashes ------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_unexpected_send_error_fails_the_row_at_once(one_sender, open_tab, browser_session):
    FakeGateway.fail_next("send_verify_code", RuntimeError("boom"))
    tab = await send_code(open_tab, browser_session, PHONE)
    sending = await tab.receive()
    assert sending["verification"]["status"] == "sending"
    # At once, not when the tab's watchdog gives up (REQUEST_TIMEOUT + 5 s).
    error = await tab.receive(wait=2)
    assert error["type"] == "error"
    assert error["code"] == "INTERNAL"
    assert error["verification"]["status"] == "failed"
    row = await PhoneVerification.objects.aget(pk=sending["verification"]["id"])
    assert row.status == "failed"
    assert row.last_error == "INTERNAL"
    assert FakeGateway.outbox == []


# Sender sign-ins -------------------------------------------------------------------------------


@pytest.mark.integration
async def test_abandoned_sender_sign_in_is_dropped(sandbox_settings, monkeypatch):
    monkeypatch.setattr(telethon_gateway, "LOGIN_LIFETIME", 0.5)
    gateway = gateway_from_settings()
    phone = sandbox_number()
    try:
        await gateway.login_send_code("abandoned", phone)
        client = gateway._logins["abandoned"][0]
        assert client.is_connected()
        async with asyncio.timeout(5):
            while "abandoned" in gateway._logins or client.is_connected():
                await asyncio.sleep(0.05)
        assert gateway._login_timers == {}
        with pytest.raises(GatewayError) as gone:
            await gateway.login_sign_in("abandoned", sandbox_settings.last_code(phone))
        assert gone.value.code is ErrorCode.NO_ACTIVE_VERIFICATION
    finally:
        await gateway.close_all()


@pytest.mark.integration
async def test_finished_sender_sign_in_cancels_its_timer(sandbox_settings, monkeypatch):
    monkeypatch.setattr(telethon_gateway, "LOGIN_LIFETIME", 0.5)
    gateway = gateway_from_settings()
    phone = sandbox_number()
    try:
        await gateway.login_send_code("finished", phone)
        timer = gateway._login_timers["finished"]
        result = await gateway.login_sign_in("finished", sandbox_settings.last_code(phone))
        assert result.phone_number == phone
        assert timer.cancelled()
        assert gateway._login_timers == {}
        assert gateway._logins == {}
    finally:
        await gateway.close_all()
