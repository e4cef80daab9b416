"""Signing a sender account in and out, with and without 2FA, as staff would."""

from __future__ import annotations

import pytest
from telethon import errors, functions, types

from verification.sandbox.phones import DEFAULT_2FA_PASSWORD

pytestmark = pytest.mark.asyncio


async def test_sign_in_without_password(sandbox, connect, phone):
    number = phone(2)
    client = await connect()
    sent = await client.send_code_request(number)
    assert sandbox.inbox[-1].purpose == "login"
    with pytest.raises(errors.PhoneCodeInvalidError):
        await client.sign_in(number, "11111", phone_code_hash=sent.phone_code_hash)
    me = await client.sign_in(number, "22222", phone_code_hash=sent.phone_code_hash)
    assert me.is_self and me.phone == number[1:] and me.first_name == "Sandbox"
    assert await client.is_user_authorized()


async def test_user_id_is_deterministic(sandbox, signed_in, phone):
    number = phone()
    first = await (await signed_in(number)).get_me()
    second = await (await signed_in(number)).get_me()
    assert first.id == second.id


async def test_sign_in_with_default_2fa_password(sandbox, connect):
    number = "+9996638123"
    client = await connect()
    sent = await client.send_code_request(number)
    with pytest.raises(errors.SessionPasswordNeededError):
        await client.sign_in(number, "33333", phone_code_hash=sent.phone_code_hash)
    assert await client.is_user_authorized() is False

    with pytest.raises(errors.PasswordHashInvalidError):
        await client.sign_in(password="not-the-password")
    me = await client.sign_in(password=DEFAULT_2FA_PASSWORD)
    assert me.phone == number[1:]
    assert await client.is_user_authorized()


async def test_add_account_with_password(sandbox, connect, phone):
    number = phone(4)
    sandbox.add_account(number, password="correct horse")
    client = await connect()
    sent = await client.send_code_request(number)
    with pytest.raises(errors.SessionPasswordNeededError):
        await client.sign_in(number, "44444", phone_code_hash=sent.phone_code_hash)
    me = await client.sign_in(password="correct horse")
    assert me.phone == number[1:]


async def test_password_check_needs_the_password_step(sandbox, connect):
    client = await connect()
    with pytest.raises(errors.AuthKeyUnregisteredError):
        await client(functions.account.GetPasswordRequest())


async def test_signed_in_account_without_password(sandbox, signed_in):
    client = await signed_in()
    password = await client(functions.account.GetPasswordRequest())
    assert password.has_password is False


async def test_log_out_ends_the_authorization(sandbox, signed_in, connect):
    client = await signed_in()
    saved = client.session.save()
    assert await client.log_out() is True

    again = await connect(session=saved)  # the same auth key, now signed out
    assert await again.is_user_authorized() is False
    with pytest.raises(errors.AuthKeyUnregisteredError):
        await again(functions.auth.LogOutRequest())


async def test_sign_in_with_a_verify_hash_is_refused(sandbox, signed_in, phone):
    client = await signed_in()
    number = phone(9)
    sent = await client(functions.account.SendVerifyPhoneCodeRequest(number, types.CodeSettings()))
    with pytest.raises(errors.PhoneCodeExpiredError):
        await client(functions.auth.SignInRequest(number, sent.phone_code_hash, "99999"))
