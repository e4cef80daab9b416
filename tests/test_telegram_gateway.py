"""The Gateway API transport against the Gateway sandbox, over real HTTP."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Iterator

import pytest

from verification.errors import ErrorCode
from verification.gateway.base import GatewayError
from verification.gateway.telegram_gateway import (
    GatewayCodes,
    TelegramGatewayAPI,
    report_signature,
)
from verification.sandbox.gateway_api import GatewaySandbox


@pytest.fixture
def gateway_sandbox() -> Iterator[GatewaySandbox]:
    with GatewaySandbox(balance=1.0, price=0.25) as sandbox:
        yield sandbox


@pytest.fixture
def api(gateway_sandbox: GatewaySandbox) -> TelegramGatewayAPI:
    return TelegramGatewayAPI(token=gateway_sandbox.token, url=gateway_sandbox.url, timeout=5)


async def test_a_checked_number_is_sent_its_code_free(
    api: TelegramGatewayAPI, gateway_sandbox: GatewaySandbox
) -> None:
    ability = await api.check_send_ability("+9996631234")
    assert ability.request_cost == 0.25
    assert ability.remaining_balance == 0.75

    sent = await api.send_verification_message(
        "+9996631234", request_id=ability.request_id, code_length=6, ttl=60
    )

    assert sent.request_cost == 0
    # Only an answer to a charged call reports the balance.
    assert sent.remaining_balance is None
    assert sent.delivery_status == "sent"
    assert gateway_sandbox.last_code("+9996631234") == "333333"
    await api.aclose()


async def test_a_send_without_a_check_is_billed(api: TelegramGatewayAPI) -> None:
    sent = await api.send_verification_message("+9996631234", code_length=4)
    assert sent.request_cost == 0.25
    assert sent.remaining_balance == 0.75
    await api.aclose()


async def test_codes_are_checked_by_telegram(api: TelegramGatewayAPI) -> None:
    sent = await api.send_verification_message("+9996651111", code_length=5)

    wrong = await api.check_verification_status(sent.request_id, "12345")
    right = await api.check_verification_status(sent.request_id, "55555")

    assert wrong.verification_status == "code_invalid"
    assert right.verification_status == "code_valid"
    await api.aclose()


async def test_too_many_wrong_codes_end_the_message(api: TelegramGatewayAPI) -> None:
    sent = await api.send_verification_message("+9996651111", code_length=5)
    answers = [
        (await api.check_verification_status(sent.request_id, "00000")).verification_status
        for _ in range(4)
    ]
    assert answers == [
        "code_invalid",
        "code_invalid",
        "code_max_attempts_exceeded",
        "code_max_attempts_exceeded",
    ]
    await api.aclose()


async def test_an_expired_or_revoked_message_takes_no_code(
    api: TelegramGatewayAPI, gateway_sandbox: GatewaySandbox
) -> None:
    first = await api.send_verification_message("+9996651111", code_length=5)
    second = await api.send_verification_message("+9996651112", code_length=5)
    gateway_sandbox.messages[first.request_id].expires_at = time.time() - 1

    assert await api.revoke_verification_message(second.request_id) is True

    for request_id in (first.request_id, second.request_id):
        status = await api.check_verification_status(request_id, "55555")
        assert status.verification_status == "expired"
    await api.aclose()


@pytest.mark.parametrize(
    ("phone", "code", "telegram_error", "retry_after"),
    [
        ("+9996619101", ErrorCode.PHONE_NOT_ON_TELEGRAM, "PHONE_NUMBER_NOT_FOUND", None),
        ("+9996619002", ErrorCode.PHONE_NUMBER_INVALID, "PHONE_NUMBER_INVALID", None),
        ("+9996619001", ErrorCode.FLOOD_WAIT, "FLOOD_WAIT_30", 30),
        ("+9996619102", ErrorCode.TELEGRAM_UNAVAILABLE, "BALANCE_NOT_ENOUGH", None),
        ("12", ErrorCode.PHONE_NUMBER_INVALID, "PHONE_NUMBER_INVALID", None),
    ],
)
async def test_scenario_numbers_are_refused_with_our_error_codes(
    api: TelegramGatewayAPI, phone: str, code: ErrorCode, telegram_error: str, retry_after: int
) -> None:
    with pytest.raises(GatewayError) as raised:
        await api.check_send_ability(phone)
    assert raised.value.code is code
    assert raised.value.telegram_error == telegram_error
    assert raised.value.retry_after == retry_after
    await api.aclose()


async def test_the_balance_runs_out(api: TelegramGatewayAPI) -> None:
    for _ in range(4):
        await api.send_verification_message("+9996621111", code_length=4)
    with pytest.raises(GatewayError) as raised:
        await api.send_verification_message("+9996621111", code_length=4)
    assert raised.value.telegram_error == "BALANCE_NOT_ENOUGH"
    await api.aclose()


async def test_a_wrong_token_is_refused(gateway_sandbox: GatewaySandbox) -> None:
    api = TelegramGatewayAPI(token="wrong", url=gateway_sandbox.url)
    with pytest.raises(GatewayError) as raised:
        await api.check_send_ability("+9996631234")
    assert raised.value.code is ErrorCode.TELEGRAM_UNAVAILABLE
    assert raised.value.telegram_error == "ACCESS_TOKEN_INVALID"
    await api.aclose()


async def test_an_unreachable_gateway_is_retried_then_unavailable(
    gateway_sandbox: GatewaySandbox,
) -> None:
    url = gateway_sandbox.url
    gateway_sandbox.stop()
    api = TelegramGatewayAPI(token="t", url=url, timeout=1, retries=1)
    started = time.monotonic()
    with pytest.raises(GatewayError) as raised:
        await api.check_send_ability("+9996631234")
    assert raised.value.code is ErrorCode.TELEGRAM_UNAVAILABLE
    assert time.monotonic() - started >= 0.4  # one retry after a back-off
    await api.aclose()


def test_delivery_reports_are_signed_for_the_token(gateway_sandbox: GatewaySandbox) -> None:
    received: list[tuple[str, bytes, dict[str, str]]] = []

    def deliver(url: str, body: bytes, headers: dict[str, str]) -> int:
        received.append((url, body, headers))
        return 200

    gateway_sandbox.deliver = deliver
    gateway_sandbox.call(
        "sendVerificationMessage",
        {"phone_number": "+9996631234", "callback_url": "http://site.test/report"},
        gateway_sandbox.token,
    )
    deadline = time.monotonic() + 5
    while len(received) < 2 and time.monotonic() < deadline:
        time.sleep(0.05)

    assert [json.loads(body)["delivery_status"]["status"] for _, body, _ in received] == [
        "sent",
        "delivered",
    ]
    key = hashlib.sha256(gateway_sandbox.token.encode()).digest()
    for url, body, headers in received:
        assert url == "http://site.test/report"
        signed = headers["X-Request-Timestamp"].encode() + b"\n" + body
        expected = hmac.new(key, signed, hashlib.sha256).hexdigest()
        assert headers["X-Request-Signature"] == expected
        assert report_signature(gateway_sandbox.token, headers["X-Request-Timestamp"], body) == (
            expected
        )


def test_a_refused_report_is_posted_again(gateway_sandbox: GatewaySandbox) -> None:
    # The site refuses "sent" twice (an error, then no answer at all), then takes it.
    refusals = [503, 0]
    received: list[bytes] = []

    def deliver(url: str, body: bytes, headers: dict[str, str]) -> int:
        received.append(body)
        if b'"sent"' in body and refusals:
            return refusals.pop(0)
        return 200

    gateway_sandbox.report_delay = 0.01
    gateway_sandbox.deliver = deliver
    gateway_sandbox.call(
        "sendVerificationMessage",
        {"phone_number": "+9996631234", "callback_url": "http://site.test/report"},
        gateway_sandbox.token,
    )
    deadline = time.monotonic() + 5
    while len(received) < 4 and time.monotonic() < deadline:
        time.sleep(0.02)

    attempts = [(status, answer) for _, status, answer in gateway_sandbox.reports]
    assert sorted(attempts) == [("delivered", 200), ("sent", 0), ("sent", 200), ("sent", 503)]
    # The same report, signature and all, is posted again.
    sent = [body for body in received if b'"sent"' in body]
    assert len(set(sent)) == 1


async def test_a_billed_check_with_no_message_after_it_keeps_its_cost(
    api: TelegramGatewayAPI, gateway_sandbox: GatewaySandbox
) -> None:
    codes = GatewayCodes(api, code_length=5)
    gateway_sandbox.inject_error("sendVerificationMessage", "FLOOD_WAIT_30")
    with pytest.raises(GatewayError) as raised:
        await codes.send("+9996631234")
    assert raised.value.code is ErrorCode.FLOOD_WAIT
    assert raised.value.cost == {"request_cost": 0.25, "remaining_balance": 0.75}
    assert codes.unspent_check is not None

    # A number that cannot receive is refused by the check, which is then not billed.
    with pytest.raises(GatewayError) as raised:
        await codes.send("+9996639101")
    assert raised.value.code is ErrorCode.PHONE_NOT_ON_TELEGRAM
    assert raised.value.cost is None
    assert gateway_sandbox.balance == 0.75

    delivery = await codes.send("+9996631234")
    # The free send reports no balance; the check's is the one that counts.
    assert delivery.cost == {"request_cost": 0.25, "remaining_balance": 0.5}
    assert codes.unspent_check is None
    await api.aclose()
