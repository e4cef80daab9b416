"""Code delivery, resend, cancel, expiry and the scenario numbers, over Telethon."""

from __future__ import annotations

import asyncio
import re

import pytest
from telethon import errors, functions, types

from verification.sandbox import SandboxThread
from verification.sandbox.phones import SMS_WORDS

pytestmark = pytest.mark.asyncio


def send_verify(number: str) -> functions.account.SendVerifyPhoneCodeRequest:
    return functions.account.SendVerifyPhoneCodeRequest(number, types.CodeSettings())


def verify(number: str, phone_code_hash: str, code: str) -> functions.account.VerifyPhoneRequest:
    return functions.account.VerifyPhoneRequest(number, phone_code_hash, code)


def resend(number: str, phone_code_hash: str) -> functions.auth.ResendCodeRequest:
    return functions.auth.ResendCodeRequest(number, phone_code_hash)


async def test_test_number_gets_repeated_digit_sms_with_call_next(sandbox, signed_in, phone):
    client = await signed_in()
    number = phone(7)
    sent = await client(send_verify(number))

    assert sent.type == types.auth.SentCodeTypeSms(length=5)
    assert isinstance(sent.next_type, types.auth.CodeTypeCall)
    assert sent.timeout == 1  # the suite's resend_timeout
    delivered = sandbox.inbox[-1]
    assert (delivered.phone, delivered.code, delivered.purpose, delivered.code_type) == (
        number,
        "77777",
        "verify",
        "sms",
    )
    assert delivered.sent_at.tzinfo is not None
    assert await client(verify(number, sent.phone_code_hash, "77777")) is True


async def test_send_resend_verify(sandbox, signed_in, phone):
    client = await signed_in()
    number = phone(4)
    first = await client(send_verify(number))
    second = await client(resend(number, first.phone_code_hash))

    assert second.type == types.auth.SentCodeTypeCall(length=5)
    assert second.next_type is None and second.phone_code_hash != first.phone_code_hash
    assert [c.code_type for c in sandbox.inbox if c.phone == number] == ["sms", "call"]
    with pytest.raises(errors.PhoneCodeExpiredError):  # superseded by the resend
        await client(verify(number, first.phone_code_hash, "44444"))
    with pytest.raises(errors.SendCodeUnavailableError):
        await client(resend(number, second.phone_code_hash))
    assert await client(verify(number, second.phone_code_hash, "44444")) is True
    with pytest.raises(errors.PhoneCodeExpiredError):  # a hash is good for one success
        await client(verify(number, second.phone_code_hash, "44444"))


async def test_send_cancel_verify(sandbox, signed_in, phone):
    client = await signed_in()
    number = phone()
    sent = await client(send_verify(number))
    assert await client(functions.auth.CancelCodeRequest(number, sent.phone_code_hash)) is True
    with pytest.raises(errors.PhoneCodeExpiredError):
        await client(verify(number, sent.phone_code_hash, sandbox.last_code(number)))
    with pytest.raises(errors.PhoneCodeExpiredError):
        await client(functions.auth.CancelCodeRequest(number, sent.phone_code_hash))


async def test_new_send_supersedes_the_old_hash(sandbox, signed_in, phone):
    client = await signed_in()
    number = phone(5)
    old = await client(send_verify(number))
    new = await client(send_verify(number))
    with pytest.raises(errors.PhoneCodeExpiredError):
        await client(verify(number, old.phone_code_hash, "55555"))
    assert await client(verify(number, new.phone_code_hash, "55555")) is True


async def test_hash_is_bound_to_the_auth_key(sandbox, signed_in, phone):
    owner, other = await signed_in(), await signed_in()
    number = phone(6)
    sent = await owner(send_verify(number))
    with pytest.raises(errors.PhoneCodeExpiredError):
        await other(verify(number, sent.phone_code_hash, "66666"))
    with pytest.raises(errors.PhoneCodeExpiredError):
        await other(resend(number, sent.phone_code_hash))
    assert await owner(verify(number, sent.phone_code_hash, "66666")) is True


async def test_hash_is_bound_to_the_number(sandbox, signed_in, phone):
    client = await signed_in()
    number = phone(6)
    sent = await client(send_verify(number))
    with pytest.raises(errors.PhoneCodeExpiredError):
        await client(verify(phone(6), sent.phone_code_hash, "66666"))


async def test_wrong_codes_are_counted(sandbox, signed_in, phone):
    client = await signed_in()
    number = phone(8)
    sent = await client(send_verify(number))
    for _ in range(5):
        with pytest.raises(errors.PhoneCodeInvalidError):
            await client(verify(number, sent.phone_code_hash, "12345"))
    with pytest.raises(errors.PhoneCodeExpiredError):  # dead after five wrong tries
        await client(verify(number, sent.phone_code_hash, "88888"))


async def test_four_wrong_codes_still_allow_the_right_one(sandbox, signed_in, phone):
    client = await signed_in()
    number = phone(8)
    sent = await client(send_verify(number))
    for _ in range(4):
        with pytest.raises(errors.PhoneCodeInvalidError):
            await client(verify(number, sent.phone_code_hash, "12345"))
    assert await client(verify(number, sent.phone_code_hash, "88888")) is True


async def test_empty_code_and_empty_hash(sandbox, signed_in, phone):
    client = await signed_in()
    number = phone()
    sent = await client(send_verify(number))
    with pytest.raises(errors.PhoneCodeEmptyError):
        await client(verify(number, sent.phone_code_hash, ""))
    with pytest.raises(errors.PhoneCodeHashEmptyError):
        await client(verify(number, "", "22222"))


async def test_code_expires_after_its_lifetime(phone, connect):
    with SandboxThread(code_lifetime=0.5) as short:
        from telethon.crypto import rsa

        rsa.add_key(short.public_key_pem, old=False)
        client = await connect(port=short.port)
        number = phone()
        sent = await client.send_code_request(number)
        await asyncio.sleep(0.7)
        with pytest.raises(errors.PhoneCodeExpiredError):
            await client.sign_in(number, "22222", phone_code_hash=sent.phone_code_hash)
        await client.disconnect()


async def test_other_numbers_get_a_random_code(sandbox, signed_in):
    client = await signed_in()
    number = "+4915112345678"
    first = await client(send_verify(number))
    code = sandbox.last_code(number)
    assert re.fullmatch(r"\d{5}", code)
    second = await client(resend(number, first.phone_code_hash))
    assert sandbox.last_code("4915112345678") == code  # resend repeats the same code
    assert await client(verify(number, second.phone_code_hash, code)) is True


@pytest.mark.parametrize("bad", ["12345", "+0123456789", "not a number", "1234567890123456"])
async def test_invalid_numbers(sandbox, signed_in, bad):
    client = await signed_in()
    with pytest.raises(errors.PhoneNumberInvalidError):
        await client(send_verify(bad))


# --- scenario numbers ---------------------------------------------------------------------


@pytest.mark.parametrize("purpose", ["login", "verify"])
async def test_scenario_flood_wait(sandbox, signed_in, connect, purpose):
    client = await signed_in() if purpose == "verify" else await connect()
    request = (
        send_verify("+9996619001")
        if purpose == "verify"
        else functions.auth.SendCodeRequest("9996619001", 1, "sandbox", types.CodeSettings())
    )
    with pytest.raises(errors.FloodWaitError) as caught:
        await client(request)
    assert caught.value.seconds == 30


async def test_scenario_invalid_and_banned(sandbox, signed_in, connect):
    client = await signed_in()
    with pytest.raises(errors.PhoneNumberInvalidError):
        await client(send_verify("+9996629002"))
    with pytest.raises(errors.PhoneNumberBannedError):
        await client(send_verify("+9996639003"))
    login = await connect()
    with pytest.raises(errors.PhoneNumberBannedError):
        await login.send_code_request("+9996639003")


async def test_scenario_app_code_then_sms_then_call(sandbox, signed_in):
    client = await signed_in()
    number = "+9996649004"
    sent = await client(send_verify(number))
    assert sent.type == types.auth.SentCodeTypeApp(length=5)
    assert isinstance(sent.next_type, types.auth.CodeTypeSms)
    sms = await client(resend(number, sent.phone_code_hash))
    assert sms.type == types.auth.SentCodeTypeSms(length=5)
    assert isinstance(sms.next_type, types.auth.CodeTypeCall)
    call = await client(resend(number, sms.phone_code_hash))
    assert call.type == types.auth.SentCodeTypeCall(length=5) and call.next_type is None
    assert await client(verify(number, call.phone_code_hash, "44444")) is True


async def test_scenario_missed_call(sandbox, signed_in):
    client = await signed_in()
    number = "+9996659005"
    sent = await client(send_verify(number))
    assert isinstance(sent.type, types.auth.SentCodeTypeMissedCall)
    assert sent.type.length == 4 and sent.type.prefix.startswith("+99966")
    assert isinstance(sent.next_type, types.auth.CodeTypeSms)
    delivered = sandbox.inbox[-1]
    assert (delivered.code, delivered.code_type, delivered.prefix) == (
        "5555",
        "missed_call",
        sent.type.prefix,
    )
    with pytest.raises(errors.PhoneCodeInvalidError):
        await client(verify(number, sent.phone_code_hash, "55555"))
    assert await client(verify(number, sent.phone_code_hash, "5555")) is True


async def test_scenario_fragment_sms(sandbox, signed_in):
    client = await signed_in()
    number = "+9996669006"
    sent = await client(send_verify(number))
    assert isinstance(sent.type, types.auth.SentCodeTypeFragmentSms)
    assert sent.type.url.startswith("https://fragment.com/") and sent.type.length == 5
    assert sent.next_type is None
    assert sandbox.inbox[-1].url == sent.type.url
    assert await client(verify(number, sent.phone_code_hash, "66666")) is True


async def test_scenario_sms_word(sandbox, signed_in):
    client = await signed_in()
    number = "+9996679007"
    sent = await client(send_verify(number))
    word = sandbox.last_code(number)
    assert word in SMS_WORDS
    assert sent.type == types.auth.SentCodeTypeSmsWord(beginning=word[0])
    assert isinstance(sent.next_type, types.auth.CodeTypeSms)
    assert await client(verify(number, sent.phone_code_hash, word.upper())) is True


async def test_scenario_call_without_next_type(sandbox, signed_in):
    client = await signed_in()
    number = "+9996689008"
    sent = await client(send_verify(number))
    assert sent.type == types.auth.SentCodeTypeCall(length=5)
    assert sent.next_type is None and sent.timeout is None
    with pytest.raises(errors.SendCodeUnavailableError):
        await client(resend(number, sent.phone_code_hash))
    assert await client(verify(number, sent.phone_code_hash, "88888")) is True
