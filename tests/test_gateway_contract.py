"""The transport contracts, proven on every implementation.

What every transport promises about one code (:class:`CodeTransport`: send, check, attempts,
expiry, resend, cancel, numbers that cannot receive, errors in our own codes) runs on sender
accounts (the in-memory fake, and Telethon talking to the MTProto sandbox over TCP) and on the
Gateway API (talking to the Gateway sandbox over HTTP). What only sender accounts do (signing
in, sessions, the delivery chain) runs on the fake and on Telethon. What one implementation
does, the others must do, or the fake's unit tests prove nothing about the real path.
"""

from __future__ import annotations

import itertools
import secrets
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass

import pytest
import pytest_asyncio

from verification.errors import ErrorCode
from verification.gateway import GatewayError, PasswordNeeded, TelegramGateway
from verification.gateway.base import AccountCodes, AccountUnusable, CodeTransport
from verification.gateway.fake import FakeGateway
from verification.gateway.telegram_gateway import GatewayCodes, TelegramGatewayAPI
from verification.gateway.telethon_gateway import TelethonGateway
from verification.sandbox.gateway_api import GatewaySandbox

ACCOUNT = 1
_tails = itertools.count(secrets.randbelow(500))


def number(x: int, *, two_step: bool = False) -> str:
    """A fresh test number ``+99966XYYYY``; ``two_step`` gives one with a 2FA password."""
    tail = 8000 + next(_tails) % 1000 if two_step else 3000 + next(_tails) % 1000
    return f"+99966{x}{tail}"


async def code_error(awaitable) -> ErrorCode:
    with pytest.raises(GatewayError) as raised:
        await awaitable
    return raised.value.code


@dataclass
class Implementation:
    gateway: TelegramGateway
    last_code: Callable[[str], str | None]

    async def sign_in(self, login_id: str = "contract") -> str:
        """A signed-in sender account's session, opened as ``ACCOUNT``."""
        phone = number(1)
        await self.gateway.login_send_code(login_id, phone)
        result = await self.gateway.login_sign_in(login_id, self.last_code(phone) or "")
        await self.gateway.open(ACCOUNT, result.session)
        return result.session


def _sender_implementation(request, tmp_path) -> Implementation:
    if request.param == "fake":
        FakeGateway.reset()
        return Implementation(FakeGateway(), FakeGateway.last_code)
    sandbox = request.getfixturevalue("telegram_sandbox")
    key = tmp_path / "sandbox.pem"
    key.write_text(sandbox.public_key_pem)
    gateway = TelethonGateway(server=sandbox.address, public_key_file=str(key), request_timeout=10)
    return Implementation(gateway, sandbox.last_code)


@pytest_asyncio.fixture(params=["fake", "telethon"])
async def impl(request, tmp_path) -> AsyncIterator[Implementation]:
    implementation = _sender_implementation(request, tmp_path)
    try:
        yield implementation
    finally:
        await implementation.gateway.close_all()
        FakeGateway.reset()


# What every transport promises about one code ------------------------------------------------


@dataclass
class Transport:
    """A :class:`CodeTransport` and what the test can see on the other side of it."""

    codes: CodeTransport
    last_code: Callable[[str], str | None]
    delivered: Callable[[str], int]
    expire: Callable[[str], int]
    #: A scenario number's last four digits that cannot receive a code, and the error.
    cannot_receive: tuple[str, ErrorCode]


@pytest.fixture
def gateway_sandbox() -> Iterator[GatewaySandbox]:
    with GatewaySandbox(report_delay=60) as sandbox:
        yield sandbox


@pytest_asyncio.fixture(params=["fake", "telethon", "gateway"])
async def transport(request, tmp_path) -> AsyncIterator[Transport]:
    if request.param == "gateway":
        sandbox = request.getfixturevalue("gateway_sandbox")
        api = TelegramGatewayAPI(token=sandbox.token, url=sandbox.url, timeout=5)

        def delivered(phone: str) -> int:
            return sum(1 for message in sandbox.inbox if message.phone == phone)

        try:
            yield Transport(
                GatewayCodes(api, code_length=5),
                sandbox.last_code,
                delivered,
                sandbox.expire,
                ("9101", ErrorCode.PHONE_NOT_ON_TELEGRAM),
            )
        finally:
            await api.aclose()
        return
    implementation = _sender_implementation(request, tmp_path)
    await implementation.sign_in()
    if request.param == "fake":

        def delivered(phone: str) -> int:
            return sum(1 for to, _ in FakeGateway.outbox if to == phone)

        expire = FakeGateway.expire
    else:
        sandbox = request.getfixturevalue("telegram_sandbox")

        def delivered(phone: str) -> int:
            return len(sandbox.codes_for(phone))

        expire = sandbox.expire_codes
    try:
        yield Transport(
            AccountCodes(implementation.gateway, ACCOUNT),
            implementation.last_code,
            delivered,
            expire,
            ("9003", ErrorCode.PHONE_NUMBER_BANNED),
        )
    finally:
        await implementation.gateway.close_all()
        FakeGateway.reset()


async def test_a_code_is_sent_and_checked(transport):
    phone = number(2)
    delivery = await transport.codes.send(phone)
    assert delivery.handle
    assert delivery.sent.length == 5
    assert transport.last_code(phone) == "22222"
    assert transport.delivered(phone) == 1
    wrong = transport.codes.check(phone, delivery.handle, "12345")
    assert await code_error(wrong) is ErrorCode.PHONE_CODE_INVALID
    await transport.codes.check(phone, delivery.handle, "22222")


async def test_wrong_codes_run_out(transport):
    phone = number(3)
    delivery = await transport.codes.send(phone)
    refusals = []
    for _ in range(10):
        refusals.append(await code_error(transport.codes.check(phone, delivery.handle, "12345")))
        if refusals[-1] is not ErrorCode.PHONE_CODE_INVALID:
            break
    assert refusals[0] is ErrorCode.PHONE_CODE_INVALID
    assert refusals[-1] is not ErrorCode.PHONE_CODE_INVALID
    # Telegram gave up on the code: the right one no longer passes either.
    right = await code_error(transport.codes.check(phone, delivery.handle, "33333"))
    assert right in {ErrorCode.TOO_MANY_ATTEMPTS, ErrorCode.PHONE_CODE_EXPIRED}


async def test_an_expired_code_is_refused(transport):
    phone = number(4)
    delivery = await transport.codes.send(phone)
    assert transport.expire(phone) >= 1
    expired = transport.codes.check(phone, delivery.handle, "44444")
    assert await code_error(expired) is ErrorCode.PHONE_CODE_EXPIRED


async def test_a_resend_delivers_again_and_only_the_newest_counts(transport):
    phone = number(5)
    first = await transport.codes.send(phone)
    second = await transport.codes.resend(phone, first.handle)
    assert second.handle != first.handle
    assert transport.delivered(phone) == 2
    assert transport.last_code(phone) == "55555"
    replaced = transport.codes.check(phone, first.handle, "55555")
    assert await code_error(replaced) is ErrorCode.PHONE_CODE_EXPIRED
    await transport.codes.check(phone, second.handle, "55555")


async def test_cancel_makes_the_code_useless(transport):
    phone = number(6)
    delivery = await transport.codes.send(phone)
    await transport.codes.cancel(phone, delivery.handle)
    refused = transport.codes.check(phone, delivery.handle, "66666")
    assert await code_error(refused) is ErrorCode.PHONE_CODE_EXPIRED


async def test_an_unknown_handle_is_expired(transport):
    phone = number(7)
    await transport.codes.send(phone)
    unknown = transport.codes.check(phone, "0badc0de0badc0de", "77777")
    assert await code_error(unknown) is ErrorCode.PHONE_CODE_EXPIRED


async def test_a_number_that_cannot_receive_gets_no_code(transport):
    tail, error = transport.cannot_receive
    phone = f"+999661{tail}"
    assert await code_error(transport.codes.send(phone)) is error
    assert transport.delivered(phone) == 0


@pytest.mark.parametrize(
    ("tail", "code", "retry_after"),
    [("9001", ErrorCode.FLOOD_WAIT, 30), ("9002", ErrorCode.PHONE_NUMBER_INVALID, None)],
)
async def test_telegram_errors_arrive_as_ours(transport, tail, code, retry_after):
    with pytest.raises(GatewayError) as raised:
        await transport.codes.send(f"+999661{tail}")
    assert raised.value.code is code
    assert raised.value.retry_after == retry_after
    assert raised.value.telegram_error


# What only sender accounts do ------------------------------------------------------------------


async def test_send_delivers_the_test_numbers_code(impl):
    await impl.sign_in()
    phone = number(2)
    sent = await impl.gateway.send_verify_code(ACCOUNT, phone)
    assert (sent.type, sent.length, sent.next_type) == ("sms", 5, "call")
    assert sent.timeout and sent.timeout > 0
    assert sent.phone_code_hash
    assert impl.last_code(phone) == "22222"


async def test_resend_follows_the_chain_and_replaces_the_hash(impl):
    await impl.sign_in()
    phone = number(3)
    first = await impl.gateway.send_verify_code(ACCOUNT, phone)
    second = await impl.gateway.resend_code(ACCOUNT, phone, first.phone_code_hash)
    assert (second.type, second.next_type, second.timeout) == ("call", None, None)
    assert second.phone_code_hash != first.phone_code_hash
    assert impl.last_code(phone) == "33333"
    unavailable = impl.gateway.resend_code(ACCOUNT, phone, second.phone_code_hash)
    assert await code_error(unavailable) is ErrorCode.SEND_CODE_UNAVAILABLE
    replaced = impl.gateway.verify_phone(ACCOUNT, phone, first.phone_code_hash, "33333")
    assert await code_error(replaced) is ErrorCode.PHONE_CODE_EXPIRED


async def test_verify_refuses_a_wrong_code_then_accepts_the_right_one_once(impl):
    await impl.sign_in()
    phone = number(4)
    sent = await impl.gateway.send_verify_code(ACCOUNT, phone)
    wrong = impl.gateway.verify_phone(ACCOUNT, phone, sent.phone_code_hash, "12345")
    assert await code_error(wrong) is ErrorCode.PHONE_CODE_INVALID
    await impl.gateway.verify_phone(ACCOUNT, phone, sent.phone_code_hash, "44444")
    again = impl.gateway.verify_phone(ACCOUNT, phone, sent.phone_code_hash, "44444")
    assert await code_error(again) is ErrorCode.PHONE_CODE_EXPIRED


@pytest.mark.parametrize("phone_code_hash", ["0badc0de0badc0de", ""])
async def test_an_unknown_or_empty_hash_is_expired(impl, phone_code_hash):
    await impl.sign_in()
    phone = number(6)
    await impl.gateway.send_verify_code(ACCOUNT, phone)
    for call in (
        impl.gateway.verify_phone(ACCOUNT, phone, phone_code_hash, "66666"),
        impl.gateway.resend_code(ACCOUNT, phone, phone_code_hash),
    ):
        assert await code_error(call) is ErrorCode.PHONE_CODE_EXPIRED


async def test_an_account_that_is_not_open_cannot_send(impl):
    assert not impl.gateway.is_open(ACCOUNT)
    closed = impl.gateway.send_verify_code(ACCOUNT, number(2))
    assert await code_error(closed) is ErrorCode.TELEGRAM_UNAVAILABLE
    await impl.sign_in()
    assert impl.gateway.is_open(ACCOUNT)
    await impl.gateway.close(ACCOUNT)
    assert not impl.gateway.is_open(ACCOUNT)


async def test_login_with_the_code(impl):
    phone = number(1)
    await impl.gateway.login_send_code("login", phone)
    wrong = impl.gateway.login_sign_in("login", "00000")
    assert await code_error(wrong) is ErrorCode.PHONE_CODE_INVALID
    result = await impl.gateway.login_sign_in("login", impl.last_code(phone) or "")
    assert result.phone_number == phone
    assert result.session and result.user_id
    gone = impl.gateway.login_sign_in("login", impl.last_code(phone) or "")
    assert await code_error(gone) in (
        ErrorCode.NO_ACTIVE_VERIFICATION,
        ErrorCode.PHONE_CODE_EXPIRED,
    )


async def test_login_with_a_two_step_password(impl):
    phone = number(2, two_step=True)
    await impl.gateway.login_send_code("two-step", phone)
    with pytest.raises(PasswordNeeded):
        await impl.gateway.login_sign_in("two-step", impl.last_code(phone) or "")
    wrong = impl.gateway.login_password("two-step", "not-it")
    assert await code_error(wrong) is ErrorCode.PASSWORD_INVALID
    result = await impl.gateway.login_password("two-step", "sandbox-password")
    assert result.phone_number == phone


async def test_an_aborted_login_cannot_be_finished(impl):
    phone = number(1)
    await impl.gateway.login_send_code("aborted", phone)
    await impl.gateway.login_abort("aborted")
    finished = impl.gateway.login_sign_in("aborted", impl.last_code(phone) or "")
    assert await code_error(finished) in (
        ErrorCode.NO_ACTIVE_VERIFICATION,
        ErrorCode.PHONE_CODE_EXPIRED,
    )


async def test_a_logged_out_session_cannot_be_opened_again(impl):
    session = await impl.sign_in()
    await impl.gateway.close(ACCOUNT)
    await impl.gateway.log_out(session)
    with pytest.raises(AccountUnusable):
        await impl.gateway.open(ACCOUNT, session)
    assert not impl.gateway.is_open(ACCOUNT)
