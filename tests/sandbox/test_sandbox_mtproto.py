"""Spec corners a well-behaved Telethon never hits: bad msg_ids, seq_nos, RSA_PAD, pings."""

from __future__ import annotations

import asyncio
import hashlib
import os
import struct
import time

import pytest
from telethon import functions, types
from telethon.crypto import AES

from verification.sandbox.crypto import ServerKey, decrypt_inner_data
from verification.sandbox.handshake import Handshake


async def _send_raw(client, msg_id: int, seqno: int, body: bytes) -> None:
    """Encrypt one hand-made message with the client's own key, salt and session."""
    sender = client._sender
    data = struct.pack("<qii", msg_id, seqno, len(body)) + body
    await sender._connection.send(sender._state.encrypt_message_data(data))


async def _wait_for(predicate, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.02)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("tweak", "reason"),
    [
        ("msg_id_not_divisible_by_4", 18),
        ("msg_id_too_old", 16),
        ("msg_id_too_new", 17),
        ("even_seqno_for_content", 35),
    ],
)
async def test_bad_msg_notification(sandbox, connect, tweak, reason):
    client = await connect()
    await client(functions.PingRequest(ping_id=1))  # settles the salt and the session
    state = client._sender._state
    msg_id, seqno = state._get_new_msg_id(), state._get_seq_no(True)
    if tweak == "msg_id_not_divisible_by_4":
        msg_id += 1
    elif tweak == "msg_id_too_old":
        msg_id -= 400 << 32
    elif tweak == "msg_id_too_new":
        msg_id += 60 << 32
    body = bytes(functions.PingRequest(ping_id=2))
    if tweak == "even_seqno_for_content":
        seqno -= 1
        # A ping is not content-related by the spec (Telethon sends it as one, Pyrogram does
        # not), so the sandbox takes either parity for it; an API call must be odd.
        body = bytes(functions.help.GetNearestDcRequest())
    before = sandbox.stats.get("bad_msg_notification", 0)
    await _send_raw(client, msg_id, seqno, body)
    await _wait_for(lambda: sandbox.stats.get("bad_msg_notification", 0) > before)
    # The connection survives and the client keeps working.
    assert (await client(functions.PingRequest(ping_id=3))).ping_id == 3


@pytest.mark.asyncio
async def test_ping_delay_disconnect_drops_a_silent_connection(sandbox, connect):
    client = await connect()
    before = sandbox.stats["connections"]
    pong = await client(functions.PingDelayDisconnectRequest(ping_id=9, disconnect_delay=1))
    assert pong.ping_id == 9
    await _wait_for(lambda: sandbox.stats["connections"] > before)  # Telethon reconnected
    assert (await client(functions.PingRequest(ping_id=10))).ping_id == 10


def _rsa_pad_encrypt(key: ServerKey, data: bytes) -> bytes:
    """Client side of RSA_PAD, straight from core.telegram.org/mtproto/auth_key."""
    while True:
        data_with_padding = data + os.urandom(192 - len(data))
        temp_key = os.urandom(32)
        data_with_hash = (
            data_with_padding[::-1] + hashlib.sha256(temp_key + data_with_padding).digest()
        )
        aes_encrypted = AES.encrypt_ige(data_with_hash, temp_key, bytes(32))
        temp_key_xor = bytes(
            a ^ b for a, b in zip(temp_key, hashlib.sha256(aes_encrypted).digest(), strict=True)
        )
        value = int.from_bytes(temp_key_xor + aes_encrypted, "big")
        if value < key.n:
            return pow(value, key.e, key.n).to_bytes(256, "big")


def test_rsa_pad_inner_data_is_accepted():
    key = ServerKey.generate()
    handshake = Handshake(key)
    nonce = int.from_bytes(os.urandom(16), "little", signed=True)
    res_pq = handshake.handle(functions.ReqPqMultiRequest(nonce=nonce))[0]
    state = handshake._pending[nonce]
    inner = types.PQInnerDataDc(
        pq=res_pq.pq,
        p=state.p.to_bytes(4, "big"),
        q=state.q.to_bytes(4, "big"),
        nonce=nonce,
        server_nonce=res_pq.server_nonce,
        new_nonce=int.from_bytes(os.urandom(32), "little", signed=True),
        dc=2,
    )
    encrypted = _rsa_pad_encrypt(key, bytes(inner))
    assert decrypt_inner_data(key, encrypted).startswith(bytes(inner))
    answer, _ = handshake.handle(
        functions.ReqDHParamsRequest(
            nonce=nonce,
            server_nonce=res_pq.server_nonce,
            p=inner.p,
            q=inner.q,
            public_key_fingerprint=key.fingerprint,
            encrypted_data=encrypted,
        )
    )
    assert isinstance(answer, types.ServerDHParamsOk)
    # Garbage is refused rather than misread.
    assert decrypt_inner_data(key, os.urandom(255)) is None


@pytest.mark.asyncio
async def test_gzip_packed_requests_are_unpacked(sandbox, connect):
    from telethon.tl.core import GzipPacked

    client = await connect()
    await client(functions.PingRequest(ping_id=1))
    state = client._sender._state
    before = sandbox.stats.get("rpc:help.getNearestDc", 0)
    body = bytes(GzipPacked(bytes(functions.help.GetNearestDcRequest())))
    await _send_raw(client, state._get_new_msg_id(), state._get_seq_no(True), body)
    await _wait_for(lambda: sandbox.stats.get("rpc:help.getNearestDc", 0) > before)


@pytest.mark.asyncio
@pytest.mark.parametrize("content_related", [False, True], ids=["even", "odd"])
async def test_lone_msgs_ack_is_accepted_with_either_seqno_parity(
    sandbox, connect, content_related
):
    client = await connect()
    await client(functions.PingRequest(ping_id=1))
    state = client._sender._state
    before = sandbox.stats.get("bad_msg_notification", 0)
    for _ in range(3):
        msg_id = state._get_new_msg_id()
        body = bytes(types.MsgsAck(msg_ids=[msg_id - 4]))
        await _send_raw(client, msg_id, state._get_seq_no(content_related), body)
    assert (await client(functions.PingRequest(ping_id=2))).ping_id == 2
    assert sandbox.stats.get("bad_msg_notification", 0) == before
