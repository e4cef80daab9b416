"""The Gateway API's delivery-report endpoint: signature, replays, ordering, live push."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from collections.abc import Callable
from typing import Any

import pytest
from channels.layers import get_channel_layer
from django.test import AsyncClient, Client

from verification.frames import group_name
from verification.models import PhoneVerification, VerificationEvent

TOKEN = "report-test-token"
URL = "/gateway/report/"


@pytest.fixture
def gateway_settings(settings: Any) -> Any:
    settings.VERIFICATION = {**settings.VERIFICATION, "TELEGRAM_GATEWAY_TOKEN": TOKEN}
    return settings


@pytest.fixture
def gateway_verification(transactional_db: None, gateway_settings: Any) -> PhoneVerification:
    return PhoneVerification.objects.create(
        owner="owner-1",
        phone_number="+9996631234",
        transport="gateway",
        status="code_sent",
        gateway_request_id="req-1",
    )


def signed(body: bytes, *, timestamp: int | None = None, token: str = TOKEN) -> dict[str, str]:
    stamp = str(int(time.time()) if timestamp is None else timestamp)
    key = hashlib.sha256(token.encode()).digest()
    signature = hmac.new(key, stamp.encode() + b"\n" + body, hashlib.sha256).hexdigest()
    return {"X-Request-Timestamp": stamp, "X-Request-Signature": signature}


def report(status: str, request_id: str = "req-1", updated_at: int = 1000) -> bytes:
    return json.dumps(
        {
            "request_id": request_id,
            "phone_number": "+9996631234",
            "request_cost": 0.01,
            "delivery_status": {"status": status, "updated_at": updated_at},
        }
    ).encode()


@pytest.fixture
def post() -> Callable[..., Any]:
    # CSRF checks on: the endpoint must not need a token.
    client = Client(enforce_csrf_checks=True)

    def post_(body: bytes, headers: dict[str, str] | None = None) -> Any:
        return client.post(
            URL,
            body,
            content_type="application/json",
            headers=signed(body) if headers is None else headers,
        )

    return post_


def test_a_signed_report_is_recorded(
    gateway_verification: PhoneVerification, post: Callable[..., Any]
) -> None:
    assert post(report("delivered")).status_code == 200

    gateway_verification.refresh_from_db()
    assert gateway_verification.delivery == "delivered"
    event = VerificationEvent.objects.get(verification=gateway_verification, kind="delivery")
    assert event.data["status"] == "delivered"
    assert event.data["request_cost"] == 0.01


def test_a_wrong_signature_is_refused(
    gateway_verification: PhoneVerification, post: Callable[..., Any]
) -> None:
    body = report("read")
    assert post(body, signed(body, token="another-token")).status_code == 403
    assert post(body, {}).status_code == 401
    tampered = signed(body)
    assert post(report("revoked"), tampered).status_code == 403
    gateway_verification.refresh_from_db()
    assert gateway_verification.delivery == ""
    assert not VerificationEvent.objects.filter(kind="delivery").exists()


def test_old_timestamps_and_replays_are_refused(
    gateway_verification: PhoneVerification, post: Callable[..., Any]
) -> None:
    body = report("delivered")
    assert post(body, signed(body, timestamp=int(time.time()) - 301)).status_code == 403
    assert post(body, signed(body, timestamp=int(time.time()) + 301)).status_code == 403
    headers = signed(body)
    assert post(body, headers).status_code == 200
    assert post(body, headers).status_code == 409
    assert VerificationEvent.objects.filter(kind="delivery").count() == 1


def test_unknown_requests_bad_bodies_and_large_bodies_are_refused(
    gateway_verification: PhoneVerification, post: Callable[..., Any]
) -> None:
    assert post(report("sent", request_id="nobody")).status_code == 404
    assert post(b"not json").status_code == 400
    assert post(report("teleported")).status_code == 400
    assert post(b" " * 20_000).status_code == 413
    assert Client().get(URL).status_code == 405


def test_late_reports_do_not_move_delivery_back(
    gateway_verification: PhoneVerification, post: Callable[..., Any]
) -> None:
    for status, updated_at in [("read", 3), ("sent", 1), ("delivered", 2)]:
        assert post(report(status, updated_at=updated_at)).status_code == 200

    gateway_verification.refresh_from_db()
    assert gateway_verification.delivery == "read"
    events = VerificationEvent.objects.filter(kind="delivery").order_by("id")
    assert [event.data["status"] for event in events] == ["read", "sent", "delivered"]


def test_a_report_about_an_earlier_message_is_kept_but_not_shown(
    gateway_verification: PhoneVerification, post: Callable[..., Any]
) -> None:
    VerificationEvent.objects.create(
        verification=gateway_verification,
        kind="code_sent",
        actor="telegram",
        data={"request_id": "req-0"},
    )
    assert post(report("read", request_id="req-0")).status_code == 200
    gateway_verification.refresh_from_db()
    assert gateway_verification.delivery == ""
    assert VerificationEvent.objects.filter(kind="delivery", data__request_id="req-0").exists()


@pytest.mark.django_db(transaction=True)
async def test_each_new_status_reaches_the_visitors_tabs(gateway_settings: Any) -> None:
    verification = await PhoneVerification.objects.acreate(
        owner="owner-2",
        phone_number="+9996631234",
        transport="gateway",
        status="code_sent",
        gateway_request_id="req-2",
    )
    layer = get_channel_layer()
    channel = await layer.new_channel()
    await layer.group_add(group_name("owner-2"), channel)
    client = AsyncClient()

    for status in ("delivered", "sent"):
        body = report(status, request_id="req-2")
        response = await client.post(
            URL, body, content_type="application/json", headers=signed(body)
        )
        assert response.status_code == 200

    pushed = await layer.receive(channel)
    assert pushed["frame"]["type"] == "delivery"
    assert pushed["frame"]["status"] == "delivered"
    assert pushed["frame"]["verification"]["id"] == str(verification.pk)
    assert pushed["frame"]["verification"]["delivery"] == "delivered"
    assert pushed["frame"]["verification"]["transport"] == "gateway"
    # The late "sent" changed nothing the visitor sees: no second frame.
    with pytest.raises(TimeoutError):
        await asyncio.wait_for(layer.receive(channel), 0.3)
