"""Verifying a number through the Gateway API transport, end to end over the WebSocket: the
Gateway sandbox over real HTTP, its signed delivery reports through the report endpoint; sends
falling through between sender accounts (the fake, in the embedded worker) and the Gateway in
both directions, and what a billed check that no message followed cost."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator
from datetime import timedelta
from typing import Any

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from django.test import AsyncClient
from django.utils import timezone

from verification import dispatch, engine, selectors
from verification.errors import ErrorCode
from verification.gateway.base import AccountUnusable, GatewayError
from verification.gateway.fake import FakeGateway
from verification.models import PhoneVerification, SenderAccount, VerificationEvent
from verification.sandbox.gateway_api import GatewaySandbox

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

CALLBACK = "http://testserver/gateway/report/"


@pytest.fixture
def gateway_sandbox() -> Iterator[GatewaySandbox]:
    with GatewaySandbox(report_delay=0.05) as sandbox:
        yield sandbox


@pytest_asyncio.fixture
async def reports(gateway_sandbox: GatewaySandbox) -> AsyncIterator[list[tuple[str, int]]]:
    """Hand the sandbox's reports to the report endpoint on this test's loop, and the endpoint's
    answers back to the sandbox (which posts a refused report again); (status, answer) of each."""
    loop = asyncio.get_running_loop()
    client = AsyncClient()
    answers: list[tuple[str, int]] = []

    async def post(url: str, body: bytes, headers: dict[str, str]) -> int:
        response = await client.post(
            url.removeprefix("http://testserver"),
            body,
            content_type="application/json",
            headers=headers,
        )
        answers.append((json.loads(body)["delivery_status"]["status"], response.status_code))
        return response.status_code

    def deliver(url: str, body: bytes, headers: dict[str, str]) -> int:
        try:
            return asyncio.run_coroutine_threadsafe(post(url, body, headers), loop).result(10)
        except (RuntimeError, TimeoutError):
            return 0  # the test is over

    gateway_sandbox.deliver = deliver
    yield answers
    gateway_sandbox.deliver = None


@pytest.fixture
def gateway_settings(fake_settings: Any, gateway_sandbox: GatewaySandbox) -> Any:
    fake_settings.VERIFICATION = {
        **fake_settings.VERIFICATION,
        "TRANSPORTS": ["gateway", "sender"],
        "TELEGRAM_GATEWAY_TOKEN": gateway_sandbox.token,
        "TELEGRAM_GATEWAY_URL": gateway_sandbox.url,
        "TELEGRAM_GATEWAY_CALLBACK_URL": CALLBACK,
        "TELEGRAM_GATEWAY_CODE_LENGTH": 6,
        "TELEGRAM_GATEWAY_RESEND_TIMEOUT": 0,
    }
    return fake_settings


async def start(open_tab: Any, browser_session: Any, phone: str) -> tuple[Any, dict[str, Any]]:
    tab, _ = await open_tab(await browser_session())
    await tab.send(type="send_code", phone_number=phone)
    return tab, await tab.receive()


async def test_a_visitor_verifies_and_sees_delivery_live(
    gateway_settings: Any,
    gateway_sandbox: GatewaySandbox,
    reports: list[tuple[str, int]],
    open_tab: Any,
    browser_session: Any,
) -> None:
    tab, sending = await start(open_tab, browser_session, "+9996641234")
    assert sending["verification"]["transport"] == "gateway"
    sent = await tab.receive_until("code_sent")
    snapshot = sent["verification"]
    assert snapshot["code"] == {"type": "app", "length": 6}
    assert snapshot["delivery"] is None

    # "sent" comes first, unless it raced ahead of the code_sent record, was refused and
    # came back after "delivered" (which it then does not replace).
    seen = []
    while not seen or seen[-1]["verification"]["delivery"] != "delivered":
        seen.append(await tab.receive_until("delivery"))
    assert [frame["status"] for frame in seen] in (["sent", "delivered"], ["delivered"])

    message = gateway_sandbox.last_message("+9996641234")
    assert message is not None
    gateway_sandbox.mark_read(message.request_id)
    read = await tab.receive_until("delivery")
    assert read["verification"]["delivery"] == "read"

    await tab.send(type="verify", code="111111")
    wrong = await tab.receive_until("error")
    assert wrong["code"] == "PHONE_CODE_INVALID"
    await tab.send(type="verify", code="444444")
    verified = await tab.receive_until("verified")
    assert verified["verification"]["status"] == "verified"

    row = await PhoneVerification.objects.aget()
    assert row.transport == "gateway"
    assert row.phone_code_hash == ""
    events = [e async for e in VerificationEvent.objects.filter(verification=row)]
    code_sent = next(e for e in events if e.kind == "code_sent")
    # The check was billed; the send it made free cost nothing more.
    assert code_sent.data["request_cost"] == 0.01
    assert code_sent.data["remaining_balance"] == 99.99
    statuses = [e.data["status"] for e in events if e.kind == "delivery"]
    assert sorted(statuses) == ["delivered", "read", "sent"]
    # Each report was accepted in the end (a refused one is posted again).
    assert {status for status, answer in reports if answer == 200} == {"sent", "delivered", "read"}
    # The code lives only at Telegram (here, the sandbox): no column holds it.
    for field in PhoneVerification._meta.concrete_fields:
        assert "444444" not in str(getattr(row, field.attname))


async def test_too_many_wrong_codes_at_telegram_end_the_verification(
    gateway_settings: Any, gateway_sandbox: GatewaySandbox, open_tab: Any, browser_session: Any
) -> None:
    tab, _ = await start(open_tab, browser_session, "+9996641234")
    await tab.receive_until("code_sent")
    codes = []
    for _ in range(3):
        await tab.send(type="verify", code="000000")
        codes.append((await tab.receive_until("error"))["code"])
    assert codes == ["PHONE_CODE_INVALID", "PHONE_CODE_INVALID", "TOO_MANY_ATTEMPTS"]
    row = await PhoneVerification.objects.aget()
    assert row.status == "failed"
    message = gateway_sandbox.last_message("+9996641234")
    assert message is not None and message.revoked


async def test_resend_is_a_new_message_and_cancel_revokes_it(
    gateway_settings: Any, gateway_sandbox: GatewaySandbox, open_tab: Any, browser_session: Any
) -> None:
    tab, _ = await start(open_tab, browser_session, "+9996641234")
    first = await tab.receive_until("code_sent")
    assert first["verification"]["next_type"] == "app"
    await tab.send(type="resend")
    await tab.receive_until("code_sent")
    assert len(gateway_sandbox.inbox) == 2
    older, newer = gateway_sandbox.inbox
    assert older.revoked and not newer.revoked

    await tab.send(type="cancel")
    await tab.receive_until("cancelled")
    for _ in range(50):
        if newer.revoked:
            break
        await asyncio.sleep(0.05)
    assert newer.revoked


async def test_a_number_not_on_telegram_is_told_so(
    gateway_settings: Any, open_tab: Any, browser_session: Any
) -> None:
    # No sender account to fall through to.
    tab, _ = await start(open_tab, browser_session, "+9996619101")
    error = await tab.receive_until("error")
    assert error["code"] == "PHONE_NOT_ON_TELEGRAM"
    assert error["message"] == "This number is not on Telegram, so we cannot send it a code there."
    assert error["verification"]["status"] == "failed"


async def test_a_number_not_on_telegram_falls_through_to_sender_accounts(
    gateway_settings: Any, make_sender: Any, open_tab: Any, browser_session: Any
) -> None:
    await database_sync_to_async(make_sender)()
    tab, sending = await start(open_tab, browser_session, "+9996619101")
    assert sending["verification"]["transport"] == "gateway"
    sent = await tab.receive_until("code_sent")
    assert sent["verification"]["transport"] == "sender"
    assert sent["verification"]["code"]["type"] == "sms"


async def test_without_a_free_sender_account_codes_go_through_the_gateway(
    gateway_settings: Any, open_tab: Any, browser_session: Any
) -> None:
    gateway_settings.VERIFICATION = {
        **gateway_settings.VERIFICATION,
        "TRANSPORTS": ["sender", "gateway"],
    }
    tab, sending = await start(open_tab, browser_session, "+9996641234")
    assert sending["verification"]["transport"] == "gateway"
    sent = await tab.receive_until("code_sent")
    assert sent["verification"]["transport"] == "gateway"


# Failover between the transports -----------------------------------------------------------------


@pytest.fixture
def sender_first(gateway_settings: Any) -> Any:
    gateway_settings.VERIFICATION = {
        **gateway_settings.VERIFICATION,
        "TRANSPORTS": ["sender", "gateway"],
    }
    return gateway_settings


async def _failovers(row: PhoneVerification) -> list[dict[str, Any]]:
    events = VerificationEvent.objects.filter(verification=row, kind="error")
    return [e.data async for e in events if "failover_to" in e.data]


async def test_every_account_flood_waiting_sends_through_the_gateway(
    sender_first: Any,
    gateway_sandbox: GatewaySandbox,
    make_sender: Any,
    open_tab: Any,
    browser_session: Any,
) -> None:
    account = await database_sync_to_async(make_sender)()
    tab, _ = await open_tab(await browser_session())
    await SenderAccount.objects.filter(pk=account.pk).aupdate(
        flood_until=timezone.now() + timedelta(minutes=5)
    )
    await tab.send(type="send_code", phone_number="+9996641234")
    sent = await tab.receive_until("code_sent")
    assert sent["verification"]["transport"] == "gateway"
    assert FakeGateway.outbox == []
    assert [m.phone for m in gateway_sandbox.inbox] == ["+9996641234"]


@pytest.mark.parametrize(
    "error",
    [
        GatewayError(ErrorCode.FLOOD_WAIT, retry_after=30, telegram_error="FLOOD_WAIT_30"),
        GatewayError(ErrorCode.TELEGRAM_UNAVAILABLE, telegram_error="NOT_CONNECTED"),
        AccountUnusable(ErrorCode.TELEGRAM_UNAVAILABLE, telegram_error="AuthKeyUnregisteredError"),
    ],
    ids=["flood", "not-connected", "session-revoked"],
)
async def test_a_send_no_sender_account_can_do_falls_through_to_the_gateway(
    sender_first: Any,
    gateway_sandbox: GatewaySandbox,
    make_sender: Any,
    open_tab: Any,
    browser_session: Any,
    error: GatewayError,
) -> None:
    account = await database_sync_to_async(make_sender)()
    FakeGateway.fail_next("send_verify_code", error)
    tab, sending = await start(open_tab, browser_session, "+9996641234")
    assert sending["verification"]["transport"] == "sender"
    sent = await tab.receive_until("code_sent")
    assert sent["verification"]["transport"] == "gateway"
    # One code went out, through the Gateway; the account sent none.
    assert FakeGateway.outbox == []
    assert [m.phone for m in gateway_sandbox.inbox] == ["+9996641234"]
    row = await PhoneVerification.objects.aget()
    assert row.transport == "gateway"
    [failover] = await _failovers(row)
    assert failover["transport"] == "sender"
    assert failover["failover_to"] == "gateway"
    assert failover["error"] == error.code.value
    await tab.send(type="verify", code="444444")
    assert (await tab.receive_until("verified"))["verification"]["transport"] == "gateway"
    refreshed = await SenderAccount.objects.aget(pk=account.pk)
    assert refreshed.is_active is not isinstance(error, AccountUnusable)


async def test_an_unreachable_worker_falls_through_to_the_gateway(
    sender_first: Any,
    gateway_sandbox: GatewaySandbox,
    make_sender: Any,
    open_tab: Any,
    browser_session: Any,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # An account leased by a worker that never answers (it died holding the lease).
    sender_first.VERIFICATION = {
        **sender_first.VERIFICATION,
        "EMBEDDED_WORKER": False,
        "REQUEST_TIMEOUT": 1,
    }
    monkeypatch.setattr(engine, "ANSWER_GRACE", 0.2)
    account = await database_sync_to_async(make_sender)()
    await SenderAccount.objects.filter(pk=account.pk).aupdate(
        lease_owner="verification.worker.gone!abc",
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )
    tab, sending = await start(open_tab, browser_session, "+9996641234")
    assert sending["verification"]["transport"] == "sender"
    sent = await tab.receive_until("code_sent")
    assert sent["verification"]["transport"] == "gateway"
    assert len(gateway_sandbox.inbox) == 1


@pytest.mark.parametrize(
    ("phone", "inject"),
    [
        ("+9996619102", None),  # the balance is too low
        ("+9996641234", ("checkSendAbility", "FLOOD_WAIT_30")),
        ("+9996641234", ("sendVerificationMessage", "INTERNAL_ERROR")),
    ],
    ids=["balance", "flood", "refused"],
)
async def test_a_send_the_gateway_cannot_do_falls_through_to_sender_accounts(
    gateway_settings: Any,
    gateway_sandbox: GatewaySandbox,
    make_sender: Any,
    open_tab: Any,
    browser_session: Any,
    phone: str,
    inject: tuple[str, str] | None,
) -> None:
    await database_sync_to_async(make_sender)()
    if inject is not None:
        gateway_sandbox.inject_error(*inject)
    tab, sending = await start(open_tab, browser_session, phone)
    assert sending["verification"]["transport"] == "gateway"
    sent = await tab.receive_until("code_sent")
    assert sent["verification"]["transport"] == "sender"
    assert gateway_sandbox.inbox == []
    assert [to for to, _ in FakeGateway.outbox] == [phone]
    [failover] = await _failovers(await PhoneVerification.objects.aget())
    assert (failover["transport"], failover["failover_to"]) == ("gateway", "sender")


async def test_a_gateway_send_cut_off_after_it_left_does_not_fall_through(
    gateway_settings: Any,
    gateway_sandbox: GatewaySandbox,
    make_sender: Any,
    open_tab: Any,
    browser_session: Any,
) -> None:
    """The message may have gone out: another transport sending a second code is worse than
    the visitor asking again."""
    gateway_settings.VERIFICATION = {**gateway_settings.VERIFICATION, "REQUEST_TIMEOUT": 1}
    await database_sync_to_async(make_sender)()
    gateway_sandbox.inject_delay("sendVerificationMessage", 1.5)
    tab, _ = await start(open_tab, browser_session, "+9996641234")
    error = await tab.receive_until("error")
    assert error["code"] == "TELEGRAM_UNAVAILABLE"
    assert error["verification"]["transport"] == "gateway"
    assert FakeGateway.outbox == []
    assert await _failovers(await PhoneVerification.objects.aget()) == []


async def test_failures_falling_through_at_once_send_one_code(
    sender_first: Any,
    gateway_sandbox: GatewaySandbox,
    make_sender: Any,
    open_tab: Any,
    browser_session: Any,
) -> None:
    """Several handlers give up on the same send at the same moment (a worker's refusal, a
    tab's watchdog, a dispatch that found no worker): the locked row, which must still be on
    sender accounts, lets one of them move it, and the Gateway sends one message."""
    # No worker will answer the account's send, so nothing else sends meanwhile.
    sender_first.VERIFICATION = {**sender_first.VERIFICATION, "EMBEDDED_WORKER": False}
    account = await database_sync_to_async(make_sender)()
    await SenderAccount.objects.filter(pk=account.pk).aupdate(
        lease_owner="verification.worker.gone!abc",
        lease_expires_at=timezone.now() + timedelta(minutes=5),
    )
    tab, _ = await start(open_tab, browser_session, "+9996641234")
    row = await PhoneVerification.objects.select_related("sender_account").aget()
    message = dispatch.Request.new("send", row).message()
    error = GatewayError(ErrorCode.TELEGRAM_UNAVAILABLE, telegram_error="NOT_CONNECTED")
    taken = await asyncio.gather(
        *(dispatch.fall_through(message, error, transport="sender") for _ in range(4))
    )
    assert sorted(taken) == [False, False, False, True]
    sent = await tab.receive_until("code_sent")
    assert sent["verification"]["transport"] == "gateway"
    assert len(gateway_sandbox.inbox) == 1
    assert len(await _failovers(await PhoneVerification.objects.aget())) == 1


# What a billed check that no message followed cost --------------------------------------------


async def test_a_billed_check_that_fell_through_is_spent(
    gateway_settings: Any,
    gateway_sandbox: GatewaySandbox,
    make_sender: Any,
    open_tab: Any,
    browser_session: Any,
) -> None:
    await database_sync_to_async(make_sender)()
    gateway_sandbox.inject_error("sendVerificationMessage", "FLOOD_WAIT_30")
    tab, _ = await start(open_tab, browser_session, "+9996641234")
    sent = await tab.receive_until("code_sent")
    assert sent["verification"]["transport"] == "sender"
    assert gateway_sandbox.balance == 99.99  # the check was billed, no message followed
    [failover] = await _failovers(await PhoneVerification.objects.aget())
    assert failover["request_cost"] == 0.01
    assert failover["remaining_balance"] == 99.99
    spend = await database_sync_to_async(selectors.gateway_spend_by_day)(
        since=timezone.now() - timedelta(days=1)
    )
    assert [(day["messages"], day["cost"]) for day in spend] == [(0, 0.01)]
    assert (await database_sync_to_async(selectors.gateway_balance_last)())["balance"] == 99.99


async def test_a_billed_check_with_no_transport_left_is_spent(
    gateway_settings: Any, gateway_sandbox: GatewaySandbox, open_tab: Any, browser_session: Any
) -> None:
    gateway_settings.VERIFICATION = {**gateway_settings.VERIFICATION, "TRANSPORTS": ["gateway"]}
    gateway_sandbox.inject_error("sendVerificationMessage", "PHONE_NUMBER_NOT_FOUND")
    tab, _ = await start(open_tab, browser_session, "+9996641234")
    error = await tab.receive_until("error")
    assert error["code"] == "PHONE_NOT_ON_TELEGRAM"
    failed = await VerificationEvent.objects.aget(kind="failed")
    assert (failed.data["request_cost"], failed.data["remaining_balance"]) == (0.01, 99.99)
    spend = await database_sync_to_async(selectors.gateway_spend_by_day)(
        since=timezone.now() - timedelta(days=1)
    )
    assert [(day["messages"], day["cost"]) for day in spend] == [(0, 0.01)]
