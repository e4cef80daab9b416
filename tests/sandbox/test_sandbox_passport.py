"""A sandbox user's Telegram Passport over Telethon: the authorization form, secure values, and
acceptAuthorization reaching the bot as the service message a Telegram app makes it receive."""

from __future__ import annotations

import itertools
import json
import secrets

import pytest
from telethon import errors, functions, types

from verification import passport as site_passport
from verification.sandbox import SandboxThread
from verification.sandbox.passport import credentials_encrypted

pytestmark = pytest.mark.asyncio

SCOPE = json.dumps({"data": ["phone_number"], "v": 1})
_bot_ids = itertools.count(710_000_000 + secrets.randbelow(100_000) * 10)


@pytest.fixture
def bot(sandbox: SandboxThread):
    """``(bot_id, token, private key)`` of a bot registered with a fresh Passport key."""
    key = site_passport.private_key_generate()
    token = f"{next(_bot_ids)}:sandbox-{secrets.token_hex(4)}"
    bot_id = sandbox.add_bot(token, public_key_pem=site_passport.public_key_pem(key))
    return bot_id, token, key


def public_key(bot) -> str:
    return site_passport.public_key_pem(bot[2])


async def bot_client(connect, bot):
    client = await connect()
    await client(
        functions.auth.ImportBotAuthorizationRequest(
            flags=0, api_id=1, api_hash="sandbox", bot_auth_token=bot[1]
        )
    )
    return client


def phone_request(number: str) -> functions.account.SaveSecureValueRequest:
    value = types.InputSecureValue(
        type=types.SecureValueTypePhone(), plain_data=types.SecurePlainPhone(phone=number)
    )
    return functions.account.SaveSecureValueRequest(value=value, secure_secret_id=0)


async def verify_number(sandbox, client, number: str) -> None:
    """What a Telegram app does before keeping a number in the Passport."""
    sent = await client(functions.account.SendVerifyPhoneCodeRequest(number, types.CodeSettings()))
    code = await sandbox.await_code(number)
    assert code.purpose == "verify"
    await client(functions.account.VerifyPhoneRequest(number, sent.phone_code_hash, code.code))


async def test_a_phone_enters_the_passport_only_once_verified(sandbox, signed_in, phone):
    number = phone(3)
    client = await signed_in(number)
    assert await client(functions.account.GetAllSecureValuesRequest()) == []

    with pytest.raises(errors.RPCError, match="PHONE_VERIFICATION_NEEDED"):
        await client(phone_request(number))
    await verify_number(sandbox, client, number)
    saved = await client(phone_request(number))
    assert saved.type == types.SecureValueTypePhone()
    assert saved.plain_data == types.SecurePlainPhone(phone=number.lstrip("+"))

    assert await client(functions.account.GetAllSecureValuesRequest()) == [saved]
    assert await client(functions.account.DeleteSecureValueRequest([saved.type])) is True
    assert await client(functions.account.GetAllSecureValuesRequest()) == []


async def test_the_form_names_the_bot_the_scope_and_the_values_held(sandbox, signed_in, bot, phone):
    client = await signed_in(phone(3, "9011"))  # a Passport already holding its number
    form = await client(
        functions.account.GetAuthorizationFormRequest(bot[0], SCOPE, public_key(bot))
    )
    assert [required.type for required in form.required_types] == [types.SecureValueTypePhone()]
    assert [value.plain_data for value in form.values] == [
        types.SecurePlainPhone(phone="9996639011")
    ]
    assert [(user.id, user.bot) for user in form.users] == [(bot[0], True)]

    other_key = site_passport.public_key_pem(site_passport.private_key_generate())
    with pytest.raises(errors.RPCError, match="PUBLIC_KEY_INVALID"):
        await client(functions.account.GetAuthorizationFormRequest(bot[0], SCOPE, other_key))
    with pytest.raises(errors.RPCError, match="SCOPE_INVALID"):
        await client(functions.account.GetAuthorizationFormRequest(bot[0], "{}", public_key(bot)))


async def test_accept_authorization_sends_the_bot_what_it_can_decrypt(
    sandbox, signed_in, connect, bot, phone
):
    bot_side = await bot_client(connect, bot)
    state = await bot_side(functions.updates.GetStateRequest())
    number = phone(3, "9011")
    user = await signed_in(number)
    form = await user(functions.account.GetAuthorizationFormRequest(bot[0], SCOPE, public_key(bot)))
    nonce = secrets.token_urlsafe(16)
    accepted = await user(
        functions.account.AcceptAuthorizationRequest(
            bot_id=bot[0],
            scope=SCOPE,
            public_key=public_key(bot),
            value_hashes=[types.SecureValueHash(v.type, v.hash) for v in form.values],
            credentials=credentials_encrypted(public_key_pem=public_key(bot), nonce=nonce),
        )
    )
    assert accepted is True

    difference = await bot_side(
        functions.updates.GetDifferenceRequest(pts=state.pts, date=state.date, qts=0)
    )
    [message] = difference.new_messages
    action = message.action
    assert isinstance(action, types.MessageActionSecureValuesSentMe)
    assert message.from_id == types.PeerUser(user_id=(await user.get_me()).id)
    shared = site_passport.SharedPassport(
        values=(site_passport.SharedValue(type="phone", plain=action.values[0].plain_data.phone),),
        credentials_data=action.credentials.data,
        credentials_hash=action.credentials.hash,
        credentials_secret=action.credentials.secret,
    )
    credentials = site_passport.credentials_decrypt(bot[2], shared)
    assert site_passport.credentials_nonce(credentials) == nonce
    assert site_passport.shared_phone(shared) == "9996639011"


async def test_accepting_a_value_the_passport_lacks_is_refused(sandbox, signed_in, bot, phone):
    user = await signed_in(phone(3))
    with pytest.raises(errors.RPCError, match="VALUE_HASH_INVALID"):
        await user(
            functions.account.AcceptAuthorizationRequest(
                bot_id=bot[0],
                scope=SCOPE,
                public_key=public_key(bot),
                value_hashes=[types.SecureValueHash(types.SecureValueTypePhone(), bytes(32))],
                credentials=credentials_encrypted(public_key_pem=public_key(bot), nonce="n"),
            )
        )


async def test_passport_methods_need_a_signed_in_user(connect):
    client = await connect()
    with pytest.raises(errors.AuthKeyUnregisteredError):
        await client(functions.account.GetAllSecureValuesRequest())


def link(bot, nonce: str = "nonce-1") -> str:
    return site_passport.request_url(bot_id=bot[0], public_key=public_key(bot), nonce=nonce)


async def test_scenario_users_of_the_simulated_app(sandbox, bot):
    """9011 holds its number; 9012 verifies it first (a code in the inbox); 9013 declines;
    9014 answers late."""
    before = len(sandbox.codes_for("+9996649012"))
    assert sandbox.passport_share("+9996649011", link(bot)) == "shared"
    assert len(sandbox.codes_for("+9996649011")) == 0
    assert sandbox.passport_share("+9996649012", link(bot)) == "shared"
    delivered = sandbox.codes_for("+9996649012")
    assert len(delivered) == before + 1 and delivered[-1].purpose == "verify"
    assert sandbox.passport_share("+9996649013", link(bot)) == "declined"
    assert sandbox.passport_share("+9996649014", link(bot)) == "late"


async def test_the_simulated_app_authorizes_only_a_phone_its_passport_holds(sandbox, bot, phone):
    number = phone(6)
    assert sandbox.passport_summary(number, link(bot))["phone"] is None
    with pytest.raises(Exception, match="PHONE_VERIFICATION_NEEDED"):
        sandbox.passport_authorize(number, link(bot))
    code = sandbox.passport_send_phone_code(number)
    assert sandbox.last_code(number) == code == "66666"
    sandbox.passport_verify_phone(number, code)
    summary = sandbox.passport_summary(number, link(bot))
    assert (summary["phone"], summary["asks"]) == (number, ["phone_number"])
    assert sandbox.passport_authorize(number, link(bot)) == "shared"
