"""Verifying a number through the Gateway API transport, end to end over the WebSocket: the
Gateway sandbox over real HTTP, its signed delivery reports through the report endpoint."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from channels.db import database_sync_to_async
from django.test import AsyncClient

from verification.models import PhoneVerification, VerificationEvent
from verification.sandbox.gateway_api import GatewaySandbox

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

CALLBACK = "http://testserver/gateway/report/"


@pytest.fixture
def gateway_sandbox() -> Iterator[GatewaySandbox]:
    with GatewaySandbox(report_delay=0.05) as sandbox:
        yield sandbox


@pytest_asyncio.fixture
async def reports(gateway_sandbox: GatewaySandbox) -> AsyncIterator[list[int]]:
    """Hand the sandbox's reports to the report endpoint on this test's loop; their statuses."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue[tuple[str, bytes, dict[str, str]]] = asyncio.Queue()
    answers: list[int] = []

    def deliver(url: str, body: bytes, headers: dict[str, str]) -> int:
        loop.call_soon_threadsafe(queue.put_nowait, (url, body, headers))
        return 200

    async def post() -> None:
        client = AsyncClient()
        while True:
            url, body, headers = await queue.get()
            response = await client.post(
                url.removeprefix("http://testserver"),
                body,
                content_type="application/json",
                headers=headers,
            )
            answers.append(response.status_code)

    gateway_sandbox.deliver = deliver
    task = asyncio.ensure_future(post())
    yield answers
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


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
    reports: list[int],
    open_tab: Any,
    browser_session: Any,
) -> None:
    tab, sending = await start(open_tab, browser_session, "+9996641234")
    assert sending["verification"]["transport"] == "gateway"
    sent = await tab.receive_until("code_sent")
    snapshot = sent["verification"]
    assert snapshot["code"] == {"type": "app", "length": 6}
    assert snapshot["delivery"] is None

    delivered = await tab.receive_until("delivery")
    assert delivered["status"] == "sent"
    delivered = await tab.receive_until("delivery")
    assert delivered["status"] == "delivered"
    assert delivered["verification"]["delivery"] == "delivered"

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
    assert [e.data["status"] for e in events if e.kind == "delivery"] == [
        "sent",
        "delivered",
        "read",
    ]
    assert set(reports) == {200}
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
