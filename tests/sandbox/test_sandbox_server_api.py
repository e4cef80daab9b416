"""The Python API: inbox, subscribe, logging, state file persistence, RSA key loading."""

from __future__ import annotations

import asyncio
import logging
import os

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa as crypto_rsa
from telethon import functions, types
from telethon.crypto import rsa
from telethon.errors import AuthKeyNotFound

from verification.sandbox import DeliveredCode, SandboxServer, SandboxThread


@pytest.mark.asyncio
async def test_inbox_subscribe_last_code_and_log(sandbox, signed_in, phone, caplog):
    received: list[DeliveredCode] = []
    unsubscribe = sandbox.subscribe(received.append)
    client = await signed_in()
    number = phone(2)
    with caplog.at_level(logging.INFO, logger="verification.sandbox"):
        await client(functions.account.SendVerifyPhoneCodeRequest(number, types.CodeSettings()))
    unsubscribe()
    await client(functions.account.SendVerifyPhoneCodeRequest(phone(), types.CodeSettings()))

    assert [c.phone for c in received] == [received[0].phone, number]  # login code, then ours
    assert received[-1].purpose == "verify"
    assert sandbox.last_code(number) == "22222"
    assert sandbox.last_code(number[1:]) == "22222"
    assert sandbox.last_code("+15550000000") is None
    assert f"Sandbox: code 22222 for {number} (sms)" in caplog.text
    copy = sandbox.inbox
    copy.clear()
    assert sandbox.inbox  # a copy, not the server's list


@pytest.mark.asyncio
async def test_state_file_keeps_sessions_across_restarts(tmp_path, phone, new_client):
    state = tmp_path / "sandbox.json"
    number = phone(5)
    with SandboxThread(state_file=state) as first:
        rsa.add_key(first.public_key_pem, old=False)
        port, pem = first.port, first.public_key_pem
        client = new_client(port)
        await client.connect()
        sent = await client.send_code_request(number)
        await client.sign_in(number, "55555", phone_code_hash=sent.phone_code_hash)
        saved = client.session.save()
        await client.disconnect()

    with SandboxThread(port=port, state_file=state) as second:
        assert second.public_key_pem == pem
        client = new_client(port, saved)
        await client.connect()
        try:
            assert await client.is_user_authorized()
            assert (await client.get_me()).phone == number[1:]
        finally:
            await client.disconnect()


@pytest.mark.asyncio
async def test_without_state_file_a_restart_forgets_the_key(new_client):
    with SandboxThread() as first:
        rsa.add_key(first.public_key_pem, old=False)
        port = first.port
        client = new_client(port)
        await client.connect()
        saved = client.session.save()
        await client.disconnect()
    with SandboxThread(port=port) as second:
        rsa.add_key(second.public_key_pem, old=False)
        client = new_client(port, saved)
        try:
            with pytest.raises(AuthKeyNotFound):  # the transport-level -404
                await client.connect()
            with pytest.raises(AuthKeyNotFound):  # and the client stays disconnected
                await client.disconnected
        finally:
            await client.disconnect()


@pytest.mark.parametrize("pkcs8", [False, True])
def test_private_key_pem_is_used(pkcs8):
    key = crypto_rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8
        if pkcs8
        else serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    server = SandboxServer(private_key_pem=pem)
    expected = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.PKCS1
    )
    assert server.public_key_pem.encode() == expected
    assert server.public_key_pem.startswith("-----BEGIN RSA PUBLIC KEY-----")


def test_inject_rejects_zero_times(sandbox):
    with pytest.raises(ValueError):
        sandbox.inject_error("auth.sendCode", "X", times=0)


@pytest.mark.asyncio
async def test_await_code_and_wait_for_code(sandbox, signed_in, phone):
    client = await signed_in()
    number = phone(3)
    waiter = asyncio.ensure_future(sandbox.await_code(number, timeout=5))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    await client(functions.account.SendVerifyPhoneCodeRequest(number, types.CodeSettings()))
    delivered = await waiter
    assert (delivered.code, delivered.purpose) == ("33333", "verify")
    assert sandbox.wait_for_code(number, timeout=1) == delivered
    assert len(sandbox.codes_for(number[1:])) == 1
    with pytest.raises(TimeoutError):
        sandbox.wait_for_code(number, after=1, timeout=0.1)


def test_short_auth_keys_are_found_in_every_padding(tmp_path):
    from verification.sandbox.crypto import auth_key_id
    from verification.sandbox.store import Store

    key = b"\x01" + os.urandom(254)  # what Telethon holds when g^ab has a leading zero byte
    store = Store(tmp_path / "state.json")
    record = store.add_auth_key(key)
    record.user_id = 42
    store.save()
    reloaded = Store(tmp_path / "state.json")
    for variant in (key, key + b"\0", b"\0" + key):  # as is, StringSession-padded, spec-padded
        found = reloaded.lookup(auth_key_id(variant))
        assert found is not None and found[0] == variant and found[1].user_id == 42
