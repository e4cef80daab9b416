"""The signals a host project listens to, sent along a visitor's flow (fake gateway)."""

from __future__ import annotations

import logging
from datetime import timedelta

import pytest
from django.utils import timezone

from verification import signals
from verification.errors import ErrorCode
from verification.gateway import GatewayError
from verification.gateway.fake import FakeGateway
from verification.models import PhoneVerification

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

PHONE = "+9996621234"
CODE = "22222"

SIGNALS = {
    "started": signals.verification_started,
    "code_sent": signals.verification_code_sent,
    "verified": signals.verification_verified,
    "failed": signals.verification_failed,
    "cancelled": signals.verification_cancelled,
    "expired": signals.verification_expired,
}


class Recorder:
    """Every signal received, as (name, sender, verification status then, extra kwargs)."""

    def __init__(self):
        self.calls = []
        self.verifications = []

    def receiver(self, name):
        def receive(sender, verification, signal, **kwargs):
            self.calls.append((name, sender, verification.status, kwargs))
            self.verifications.append(verification)

        return receive

    @property
    def names(self):
        return [name for name, *_ in self.calls]


@pytest.fixture
def received():
    recorder = Recorder()
    connected = []
    for name, signal in SIGNALS.items():
        receiver = recorder.receiver(name)
        signal.connect(receiver, weak=False)
        connected.append((signal, receiver))
    yield recorder
    for signal, receiver in connected:
        signal.disconnect(receiver)


@pytest.fixture
def ready(fake_settings, make_sender):
    make_sender()
    return fake_settings


async def code_sent(open_tab, browser_session, phone=PHONE):
    tab, _ = await open_tab(await browser_session())
    await tab.send(type="send_code", phone_number=phone)
    sent = await tab.receive_until("code_sent")
    return tab, sent["verification"]["id"]


async def test_successful_flow(ready, received, open_tab, browser_session):
    tab, verification_id = await code_sent(open_tab, browser_session)
    await tab.send(type="verify", code=CODE)
    await tab.receive_until("verified")

    assert received.names == ["started", "code_sent", "verified"]
    assert [status for _, _, status, _ in received.calls] == ["sending", "code_sent", "verified"]
    assert all(sender is PhoneVerification for _, sender, _, _ in received.calls)
    assert received.calls[1][3] == {"resent": False}
    for verification in received.verifications:
        assert isinstance(verification, PhoneVerification)
        assert str(verification.pk) == verification_id
        assert verification.phone_number == PHONE


async def test_resend_is_code_sent_with_resent(ready, received, open_tab, browser_session):
    FakeGateway.resend_timeout = 1
    tab, _ = await code_sent(open_tab, browser_session)
    await tab.receive_until("resend_available", wait=5)
    await tab.send(type="resend")
    await tab.receive_until("code_sent")
    assert received.names == ["started", "code_sent", "code_sent"]
    assert [kwargs for name, _, _, kwargs in received.calls if name == "code_sent"] == [
        {"resent": False},
        {"resent": True},
    ]


async def test_too_many_attempts_fails(ready, received, open_tab, browser_session):
    tab, verification_id = await code_sent(open_tab, browser_session)
    for _ in range(5):
        await tab.send(type="verify", code="11111")
        error = await tab.receive_until("error")
    assert error["code"] == "TOO_MANY_ATTEMPTS"

    assert received.names == ["started", "code_sent", "failed"]
    name, sender, status, kwargs = received.calls[-1]
    assert status == "failed"
    assert kwargs == {"error": "TOO_MANY_ATTEMPTS"}
    assert str(received.verifications[-1].pk) == verification_id


async def test_a_refused_send_fails(ready, received, open_tab, browser_session):
    FakeGateway.fail_next("send_verify_code", GatewayError(ErrorCode.FLOOD_WAIT, retry_after=30))
    tab, _ = await open_tab(await browser_session())
    await tab.send(type="send_code", phone_number=PHONE)
    assert (await tab.receive_until("error"))["code"] == "FLOOD_WAIT"
    assert received.names == ["started", "failed"]
    assert received.calls[-1][3] == {"error": "FLOOD_WAIT"}


async def test_cancel(ready, received, open_tab, browser_session):
    tab, verification_id = await code_sent(open_tab, browser_session)
    await tab.send(type="cancel")
    await tab.receive_until("cancelled")
    assert received.names == ["started", "code_sent", "cancelled"]
    assert received.calls[-1][2] == "cancelled"
    assert str(received.verifications[-1].pk) == verification_id


async def test_a_new_send_cancels_the_previous_verification(
    ready, received, open_tab, browser_session
):
    tab, first_id = await code_sent(open_tab, browser_session)
    await tab.send(type="send_code", phone_number="+9996631234")
    await tab.receive_until("code_sent")
    assert received.names == ["started", "code_sent", "cancelled", "started", "code_sent"]
    assert str(received.verifications[2].pk) == first_id


async def test_expiry(ready, received, open_tab, browser_session):
    tab, verification_id = await code_sent(open_tab, browser_session)
    await PhoneVerification.objects.filter(pk=verification_id).aupdate(
        expires_at=timezone.now() - timedelta(seconds=1)
    )
    await tab.send(type="state")
    state = await tab.receive_until("state")
    assert state["verification"]["status"] == "expired"
    assert received.names == ["started", "code_sent", "expired"]
    assert received.calls[-1][2] == "expired"
    assert str(received.verifications[-1].pk) == verification_id


async def test_a_failing_receiver_does_not_break_the_flow(
    ready, received, open_tab, browser_session, caplog
):
    def broken(sender, **kwargs):
        raise RuntimeError("host project bug")

    for signal in SIGNALS.values():
        signal.connect(broken, weak=False)
    try:
        with caplog.at_level(logging.ERROR, logger="verification"):
            tab, _ = await code_sent(open_tab, browser_session)
            await tab.send(type="verify", code=CODE)
            verified = await tab.receive_until("verified")
    finally:
        for signal in SIGNALS.values():
            signal.disconnect(broken)

    assert verified["verification"]["status"] == "verified"
    # The other receivers still ran, and the failure was logged.
    assert received.names == ["started", "code_sent", "verified"]
    failures = [r for r in caplog.records if r.getMessage().startswith("Signal receiver")]
    assert len(failures) == 3
    assert all(r.exc_info and isinstance(r.exc_info[1], RuntimeError) for r in failures)


async def test_async_receivers_are_called(ready, open_tab, browser_session):
    seen = []

    async def on_verified(sender, verification, **kwargs):
        seen.append(verification.pk)

    signals.verification_verified.connect(on_verified, weak=False)
    try:
        tab, verification_id = await code_sent(open_tab, browser_session)
        await tab.send(type="verify", code=CODE)
        await tab.receive_until("verified")
    finally:
        signals.verification_verified.disconnect(on_verified)
    assert [str(pk) for pk in seen] == [verification_id]
