"""Transports, connection setup and MTProto service messages, seen from Telethon."""

from __future__ import annotations

import asyncio
import os
import struct
import time

import pytest
from telethon import errors, functions, types
from telethon.network.connection import (
    ConnectionTcpAbridged,
    ConnectionTcpFull,
    ConnectionTcpIntermediate,
    ConnectionTcpObfuscated,
)
from telethon.network.connection.tcpintermediate import (
    IntermediatePacketCodec,
    RandomizedIntermediatePacketCodec,
)

pytestmark = pytest.mark.asyncio


class PaddedIntermediateCodec(RandomizedIntermediatePacketCodec):
    tag = b"\xdd\xdd\xdd\xdd"  # Telethon uses its padded codec only inside obfuscation


class ConnectionTcpPaddedIntermediate(ConnectionTcpIntermediate):
    packet_codec = PaddedIntermediateCodec


class ConnectionTcpObfuscatedIntermediate(ConnectionTcpObfuscated):
    packet_codec = IntermediatePacketCodec


class ConnectionTcpObfuscatedPaddedIntermediate(ConnectionTcpObfuscated):
    packet_codec = RandomizedIntermediatePacketCodec


TRANSPORTS = [
    ConnectionTcpFull,
    ConnectionTcpIntermediate,
    ConnectionTcpPaddedIntermediate,
    ConnectionTcpAbridged,
    ConnectionTcpObfuscated,  # obfuscated abridged
    ConnectionTcpObfuscatedIntermediate,
    ConnectionTcpObfuscatedPaddedIntermediate,
]


@pytest.mark.parametrize("connection", TRANSPORTS, ids=lambda c: c.__name__)
async def test_every_transport_signs_in_and_verifies(sandbox, connect, phone, connection):
    number = phone(3)
    client = await connect(connection=connection)
    assert await client.is_user_authorized() is False

    sent = await client.send_code_request(number)
    assert isinstance(sent.type, types.auth.SentCodeTypeSms)
    me = await client.sign_in(number, "33333", phone_code_hash=sent.phone_code_hash)

    assert me.phone == number.lstrip("+")
    assert await client.is_user_authorized() is True
    assert (await client.get_me()).id == me.id


async def test_config_points_at_the_sandbox(sandbox, connect):
    client = await connect()
    config = await client(functions.help.GetConfigRequest())
    assert config.this_dc == 2
    assert {(o.id, o.ip_address, o.port) for o in config.dc_options} == {
        (dc, "127.0.0.1", sandbox.port) for dc in range(1, 6)
    }
    nearest = await client(functions.help.GetNearestDcRequest())
    assert nearest.this_dc == 2


async def test_server_corrects_the_salt_and_announces_the_session(sandbox, connect):
    before = sandbox.stats
    client = await connect()  # Telethon starts with salt 0, so the first call bounces
    assert await client.is_user_authorized() is False
    after = sandbox.stats
    assert after["bad_server_salt"] > before.get("bad_server_salt", 0)
    assert after["new_session_created"] > before.get("new_session_created", 0)
    assert after["auth_keys_created"] > before.get("auth_keys_created", 0)


async def test_ping_future_salts_and_destroy_session(sandbox, connect):
    client = await connect()
    pong = await client(functions.PingRequest(ping_id=424242))
    assert isinstance(pong, types.Pong) and pong.ping_id == 424242

    salts = await client(functions.GetFutureSaltsRequest(num=3))
    assert len(salts.salts) == 3
    assert salts.salts[0].salt == client._sender._state.salt  # the one in use is current
    assert salts.salts[0].valid_until <= salts.salts[1].valid_since

    gone = await client(functions.DestroySessionRequest(session_id=1234567))
    assert isinstance(gone, types.DestroySessionNone)


async def test_unimplemented_method_fails_fast_with_400(sandbox, connect):
    client = await connect()
    started = time.monotonic()
    with pytest.raises(errors.BadRequestError) as caught:
        await client(functions.help.GetCountriesListRequest(lang_code="en", hash=0))
    assert caught.value.message == "METHOD_NOT_IMPLEMENTED"
    assert time.monotonic() - started < 2


async def test_unauthorized_calls_get_auth_key_unregistered(sandbox, connect, phone):
    client = await connect()
    with pytest.raises(errors.AuthKeyUnregisteredError):
        await client(functions.updates.GetStateRequest())
    with pytest.raises(errors.AuthKeyUnregisteredError):
        await client(functions.account.SendVerifyPhoneCodeRequest(phone(), types.CodeSettings()))


async def test_unknown_auth_key_gets_transport_error_404(sandbox):
    reader, writer = await asyncio.open_connection("127.0.0.1", sandbox.port)
    try:
        # Intermediate transport, a message under an auth key the server never issued.
        payload = os.urandom(8) + os.urandom(16) + os.urandom(64)
        writer.write(b"\xee\xee\xee\xee" + struct.pack("<i", len(payload)) + payload)
        await writer.drain()
        (length,) = struct.unpack("<i", await reader.readexactly(4))
        body = await reader.readexactly(length)
    finally:
        writer.close()
    assert struct.unpack("<i", body) == (-404,)


async def test_garbage_closes_the_connection(sandbox):
    reader, writer = await asyncio.open_connection("127.0.0.1", sandbox.port)
    try:
        writer.write(b"\xff\xff\xff\x7f" + os.urandom(60))  # full transport, absurd length
        await writer.drain()
        assert await asyncio.wait_for(reader.read(), 5) == b""
    finally:
        writer.close()
