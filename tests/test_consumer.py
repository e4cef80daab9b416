"""Protocol v1 over a real WebSocket communicator, with the worker on the in-memory fake."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from channels.db import database_sync_to_async
from django.utils import timezone

from verification.errors import ErrorCode
from verification.gateway import GatewayError
from verification.gateway.fake import FakeGateway
from verification.models import PhoneVerification, VerificationEvent

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

PHONE = "+9996621234"


@pytest.fixture
def ready(fake_settings, make_sender):
    make_sender()
    return fake_settings


async def start(open_tab, browser_session, phone=PHONE):
    session = await browser_session()
    tab, state = await open_tab(session)
    assert state == {"type": "state", "verification": None}
    await tab.send(type="send_code", phone_number=phone)
    sending = await tab.receive()
    assert sending["type"] == "state", sending
    assert sending["verification"]["status"] == "sending"
    sent = await tab.receive_until("code_sent")
    return tab, session, sent


async def test_send_and_verify(ready, open_tab, browser_session):
    tab, _, sent = await start(open_tab, browser_session, "+999 66 2 1234")
    snapshot = sent["verification"]
    assert snapshot["phone_number"] == "+999 66 2 1234"
    assert snapshot["status"] == "code_sent"
    assert snapshot["code"] == {"type": "sms", "length": 5}
    assert snapshot["next_type"] == "call"
    assert 55 <= snapshot["resend_in"] <= 60
    assert 590 <= snapshot["expires_in"] <= 600
    assert snapshot["attempts_left"] == 5
    assert "phone_code_hash" not in str(sent)
    await tab.send(type="verify", code="22222")
    verified = await tab.receive_until("verified")
    assert verified["verification"]["status"] == "verified"
    row = await PhoneVerification.objects.aget()
    assert row.status == "verified"
    kinds = [e.kind async for e in VerificationEvent.objects.filter(verification=row)]
    assert kinds == ["started", "code_sent", "code_submitted", "verified"]


async def test_code_is_never_stored(ready, open_tab, browser_session):
    tab, _, _ = await start(open_tab, browser_session)
    await tab.send(type="verify", code="22222")
    await tab.receive_until("verified")
    row = await PhoneVerification.objects.aget()
    stored = await database_sync_to_async(
        lambda: list(PhoneVerification.objects.values_list("phone_code_hash", flat=True))
    )()
    plain_hash = row.phone_code_hash
    assert plain_hash
    # At rest the hash is encrypted.
    from django.db import connection

    def raw():
        with connection.cursor() as cursor:
            cursor.execute("SELECT phone_code_hash FROM verification_phoneverification")
            return cursor.fetchone()[0]

    assert plain_hash not in await database_sync_to_async(raw)()
    assert stored == [plain_hash]
    events = [e.data async for e in VerificationEvent.objects.all()]
    assert "22222" not in str(events)


async def test_wrong_code_then_too_many_attempts(ready, open_tab, browser_session):
    tab, _, _ = await start(open_tab, browser_session)
    for left in (4, 3, 2, 1):
        await tab.send(type="verify", code="11111")
        error = await tab.receive_until("error")
        assert error["code"] == "PHONE_CODE_INVALID"
        assert error["message"]
        assert error["verification"]["attempts_left"] == left
    await tab.send(type="verify", code="11111")
    error = await tab.receive_until("error")
    assert error["code"] == "TOO_MANY_ATTEMPTS"
    assert error["verification"]["status"] == "failed"
    await tab.send(type="verify", code="22222")
    error = await tab.receive_until("error")
    assert error["code"] == "NO_ACTIVE_VERIFICATION"


async def test_resend_before_deadline_is_refused(ready, open_tab, browser_session):
    tab, _, _ = await start(open_tab, browser_session)
    await tab.send(type="resend")
    error = await tab.receive_until("error")
    assert error["code"] == "RESEND_NOT_AVAILABLE"
    assert 55 <= error["retry_after"] <= 60


async def test_resend_available_is_pushed_then_resend_follows_next_type(
    ready, open_tab, browser_session
):
    FakeGateway.resend_timeout = 1
    tab, _, sent = await start(open_tab, browser_session)
    assert sent["verification"]["resend_in"] == 1
    available = await tab.receive_until("resend_available", wait=5)
    assert available["verification"]["resend_in"] == 0
    await tab.send(type="resend")
    resent = await tab.receive_until("code_sent")
    assert resent["verification"]["code"]["type"] == "call"
    assert resent["verification"]["next_type"] is None
    assert resent["verification"]["resend_in"] is None
    await tab.send(type="resend")
    error = await tab.receive_until("error")
    assert error["code"] == "SEND_CODE_UNAVAILABLE"
    await tab.send(type="verify", code="22222")
    await tab.receive_until("verified")


async def test_flood_wait_carries_retry_after(ready, open_tab, browser_session):
    FakeGateway.fail_next("send_verify_code", GatewayError(ErrorCode.FLOOD_WAIT, retry_after=30))
    session = await browser_session()
    tab, _ = await open_tab(session)
    await tab.send(type="send_code", phone_number=PHONE)
    error = await tab.receive_until("error")
    assert error["code"] == "FLOOD_WAIT"
    assert error["retry_after"] == 30
    assert error["verification"]["status"] == "failed"
    # The same number is refused locally until the wait is over.
    await tab.send(type="send_code", phone_number=PHONE)
    again = await tab.receive_until("error")
    assert again["code"] == "FLOOD_WAIT"
    assert 28 <= again["retry_after"] <= 30


@pytest.mark.parametrize(
    "error",
    [
        ErrorCode.PHONE_NUMBER_INVALID,
        ErrorCode.PHONE_NUMBER_BANNED,
        ErrorCode.PHONE_NUMBER_FLOOD,
        ErrorCode.TELEGRAM_UNAVAILABLE,
    ],
)
async def test_send_errors_fail_the_verification(ready, open_tab, browser_session, error):
    FakeGateway.fail_next("send_verify_code", GatewayError(error))
    session = await browser_session()
    tab, _ = await open_tab(session)
    await tab.send(type="send_code", phone_number=PHONE)
    frame = await tab.receive_until("error")
    assert frame["code"] == error.value
    assert frame["verification"]["status"] == "failed"


async def test_cancel(ready, open_tab, browser_session):
    tab, _, _ = await start(open_tab, browser_session)
    await tab.send(type="cancel")
    cancelled = await tab.receive_until("cancelled")
    assert cancelled["verification"]["status"] == "cancelled"
    await tab.send(type="cancel")
    error = await tab.receive_until("error")
    assert error["code"] == "NO_ACTIVE_VERIFICATION"


async def test_new_send_cancels_the_active_one(ready, open_tab, browser_session):
    tab, _, first = await start(open_tab, browser_session)
    await tab.send(type="send_code", phone_number="+9996631234")
    second = await tab.receive_until("code_sent")
    assert second["verification"]["id"] != first["verification"]["id"]
    old = await PhoneVerification.objects.aget(pk=first["verification"]["id"])
    assert old.status == "cancelled"


async def test_expired_is_pushed_and_enforced(ready, open_tab, browser_session):
    tab, _, sent = await start(open_tab, browser_session)
    await PhoneVerification.objects.filter(pk=sent["verification"]["id"]).aupdate(
        expires_at=timezone.now() + timedelta(seconds=1)
    )
    await tab.send(type="state")
    state = await tab.receive_until("state")
    assert state["verification"]["expires_in"] <= 1
    expired = await tab.receive_until("expired", wait=5)
    assert expired["verification"]["status"] == "expired"
    await tab.send(type="verify", code="22222")
    error = await tab.receive_until("error")
    assert error["code"] == "NO_ACTIVE_VERIFICATION"


@pytest.mark.parametrize(
    "raw",
    ["not json", "[]", '{"no_type": 1}', '{"type": "dance"}', '{"type": 5}'],
)
async def test_bad_messages(ready, open_tab, browser_session, raw):
    session = await browser_session()
    tab, _ = await open_tab(session)
    await tab.send_raw(raw)
    error = await tab.receive()
    assert error["type"] == "error"
    assert error["code"] == "BAD_MESSAGE"


async def test_bad_field_types(ready, open_tab, browser_session):
    session = await browser_session()
    tab, _ = await open_tab(session)
    await tab.send(type="send_code", phone_number=12345)
    assert (await tab.receive())["code"] == "BAD_MESSAGE"
    await tab.send(type="send_code", phone_number="not a number")
    assert (await tab.receive())["code"] == "PHONE_NUMBER_INVALID"
    await tab.send(type="verify", code="12345")
    assert (await tab.receive())["code"] == "NO_ACTIVE_VERIFICATION"


async def test_empty_and_oversized_codes(ready, open_tab, browser_session):
    tab, _, _ = await start(open_tab, browser_session)
    await tab.send(type="verify", code="  ")
    error = await tab.receive_until("error")
    assert error["code"] == "PHONE_CODE_EMPTY"
    assert error["verification"]["attempts_left"] == 5
    await tab.send(type="verify", code="1" * 65)
    error = await tab.receive_until("error")
    assert error["code"] == "PHONE_CODE_INVALID"
    assert error["verification"]["attempts_left"] == 5


async def test_no_sender_account(fake_settings, open_tab, browser_session):
    session = await browser_session()
    tab, _ = await open_tab(session)
    await tab.send(type="send_code", phone_number=PHONE)
    error = await tab.receive()
    assert error["code"] == "NO_SENDER_ACCOUNT"
    assert error["message"]


async def test_rate_limited(ready, open_tab, browser_session, settings):
    settings.VERIFICATION = {**settings.VERIFICATION, "RATE_LIMITS": {"session": (2, 600)}}
    session = await browser_session()
    tab, _ = await open_tab(session)
    for _ in range(2):
        await tab.send(type="send_code", phone_number=PHONE)
        await tab.receive_until("code_sent")
    await tab.send(type="send_code", phone_number=PHONE)
    error = await tab.receive_until("error")
    assert error["code"] == "RATE_LIMITED"
    assert error["retry_after"] > 0
    assert error["limit"] == "session"
    assert error["message"] == (
        "Too many codes were requested from this browser. Please wait a while."
    )


async def test_two_tabs_and_reconnect_resume(ready, open_tab, browser_session):
    tab, session, sent = await start(open_tab, browser_session)
    second, state = await open_tab(session)
    assert state["verification"]["id"] == sent["verification"]["id"]
    assert state["verification"]["status"] == "code_sent"
    await tab.send(type="verify", code="22222")
    assert (await second.receive_until("verified"))["verification"]["status"] == "verified"
    assert (await tab.receive_until("verified"))["verification"]["status"] == "verified"
    await tab.close()
    third, resumed = await open_tab(session)
    assert resumed["verification"]["status"] == "verified"


async def test_other_sessions_see_nothing(ready, open_tab, browser_session):
    tab, _, _ = await start(open_tab, browser_session)
    stranger, state = await open_tab(await browser_session())
    assert state["verification"] is None
    await tab.send(type="verify", code="22222")
    await tab.receive_until("verified")
    assert await stranger.nothing()
    await stranger.send(type="cancel")
    assert (await stranger.receive())["code"] == "NO_ACTIVE_VERIFICATION"


async def test_error_messages_are_translated(ready, open_tab, browser_session):
    from verification.testing import VerificationTab

    session = await browser_session()
    tab = VerificationTab(session)
    tab.communicator.scope["headers"].append((b"accept-language", b"ru"))
    await tab.connect()
    try:
        await tab.send(type="send_code", phone_number="nonsense")
        error = await tab.receive()
        assert error["code"] == "PHONE_NUMBER_INVALID"
        assert any("\u0400" <= ch <= "\u04ff" for ch in error["message"])
    finally:
        await tab.close()
        from verification import runtime

        await runtime.shutdown()


async def test_signed_in_user_is_recorded(ready, open_tab, browser_session, django_user_model):
    from django.contrib.auth import BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY
    from django.contrib.sessions.backends.db import SessionStore

    user = await django_user_model.objects.acreate_user("visitor", password="pw")
    session_key = await browser_session()

    def sign_in() -> None:
        store = SessionStore(session_key)
        store[SESSION_KEY] = str(user.pk)
        store[BACKEND_SESSION_KEY] = "django.contrib.auth.backends.ModelBackend"
        store[HASH_SESSION_KEY] = user.get_session_auth_hash()
        store.save()

    await database_sync_to_async(sign_in)()
    tab, _ = await open_tab(session_key)
    await tab.send(type="send_code", phone_number=PHONE)
    await tab.receive_until("code_sent")
    row = await PhoneVerification.objects.select_related("user").aget()
    assert row.user == user


async def test_require_login(ready, open_tab, browser_session, settings):
    settings.VERIFICATION = {**settings.VERIFICATION, "REQUIRE_LOGIN": True}
    tab, _ = await open_tab(await browser_session())
    await tab.send(type="send_code", phone_number=PHONE)
    error = await tab.receive()
    assert error["code"] == "LOGIN_REQUIRED"
    assert not await PhoneVerification.objects.aexists()


async def test_a_request_no_worker_answers_is_reported(ready, open_tab, browser_session, settings):
    """The worker holding the account died with the request: the visitor is told, and the
    attempt is given back."""
    from verification.models import SenderAccount

    settings.VERIFICATION = {**settings.VERIFICATION, "REQUEST_TIMEOUT": 1}
    tab, _, _ = await start(open_tab, browser_session)
    await SenderAccount.objects.aupdate(lease_owner="verification.worker.gone!dead")
    await tab.send(type="verify", code="22222")
    error = await tab.receive_until("error", wait=8)
    assert error["code"] == "TELEGRAM_UNAVAILABLE"
    assert error["verification"]["attempts_left"] == 5
    assert error["verification"]["status"] == "code_sent"


async def test_verify_without_a_live_worker_keeps_the_attempt(ready, open_tab, browser_session):
    from verification.models import SenderAccount

    tab, _, _ = await start(open_tab, browser_session)
    await SenderAccount.objects.aupdate(lease_expires_at=timezone.now())
    await tab.send(type="verify", code="22222")
    error = await tab.receive_until("error")
    assert error["code"] == "TELEGRAM_UNAVAILABLE"
    assert error["verification"]["attempts_left"] == 5


async def test_deeply_nested_json_is_a_bad_message(ready, open_tab, browser_session):
    tab, _ = await open_tab(await browser_session())
    await tab.send_raw("[" * 100000 + "]" * 100000)
    assert (await tab.receive())["code"] == "BAD_MESSAGE"
    await tab.send(type="state")
    assert (await tab.receive())["type"] == "state"


async def test_socket_without_a_session_cookie_writes_no_session(ready, stop_runtime):
    from django.contrib.sessions.models import Session

    from verification.testing import VerificationTab

    tab = VerificationTab("")
    tab.communicator.scope["headers"] = [(b"host", b"localhost")]
    try:
        assert (await tab.connect())["verification"] is None
        await tab.send(type="send_code", phone_number=PHONE)
        assert (await tab.receive_until("error"))["code"] == "SESSION_REQUIRED"
        assert not await Session.objects.aexists()
    finally:
        await tab.close()


async def test_closing_the_tab_on_an_unanswered_code_costs_no_attempt(
    ready, open_tab, browser_session, settings
):
    from verification.models import SenderAccount

    settings.VERIFICATION = {**settings.VERIFICATION, "REQUEST_TIMEOUT": 1}
    tab, session, _ = await start(open_tab, browser_session)
    await SenderAccount.objects.aupdate(lease_owner="verification.worker.gone!dead")
    for _ in range(6):
        await tab.send(type="verify", code="11111")
    await tab.close()
    await asyncio.sleep(3.5)
    again, state = await open_tab(session)
    assert state["verification"]["status"] == "code_sent"
    assert state["verification"]["attempts_left"] == 5
