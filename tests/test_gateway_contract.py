"""The gateway contract, proven on every implementation: the in-memory fake and Telethon talking
to the sandbox over TCP. What one gateway does, the other must do, or the fake's unit tests
prove nothing about the real path."""

from __future__ import annotations

import itertools
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import pytest
import pytest_asyncio

from verification.errors import ErrorCode
from verification.gateway import GatewayError, PasswordNeeded, TelegramGateway
from verification.gateway.base import AccountUnusable
from verification.gateway.fake import FakeGateway
from verification.gateway.telethon_gateway import TelethonGateway

ACCOUNT = 1
_tails = itertools.count(secrets.randbelow(500))


def number(x: int, *, two_step: bool = False) -> str:
    """A fresh test number ``+99966XYYYY``; ``two_step`` gives one with a 2FA password."""
    tail = 8000 + next(_tails) % 1000 if two_step else 3000 + next(_tails) % 1000
    return f"+99966{x}{tail}"


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


@pytest_asyncio.fixture(params=["fake", "telethon"])
async def impl(request, tmp_path) -> AsyncIterator[Implementation]:
    if request.param == "fake":
        FakeGateway.reset()
        implementation = Implementation(FakeGateway(), FakeGateway.last_code)
    else:
        sandbox = request.getfixturevalue("telegram_sandbox")
        key = tmp_path / "sandbox.pem"
        key.write_text(sandbox.public_key_pem)
        gateway = TelethonGateway(
            server=sandbox.address, public_key_file=str(key), request_timeout=10
        )
        implementation = Implementation(gateway, sandbox.last_code)
    try:
        yield implementation
    finally:
        await implementation.gateway.close_all()
        FakeGateway.reset()


async def code_error(awaitable) -> ErrorCode:
    with pytest.raises(GatewayError) as raised:
        await awaitable
    return raised.value.code


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


async def test_cancel_makes_the_code_useless(impl):
    await impl.sign_in()
    phone = number(5)
    sent = await impl.gateway.send_verify_code(ACCOUNT, phone)
    await impl.gateway.cancel_code(ACCOUNT, phone, sent.phone_code_hash)
    refused = impl.gateway.verify_phone(ACCOUNT, phone, sent.phone_code_hash, "55555")
    assert await code_error(refused) is ErrorCode.PHONE_CODE_EXPIRED


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
