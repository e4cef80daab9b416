"""The sandbox against a client that frames, numbers and encrypts every message itself.

`rawclient.RawClient` shares no transport or session code with Telethon (see its docstring), so
these tests pin down what the sandbox accepts on the wire: every transport, padding of 0-15
bytes, lone acks with either seq_no parity while idle, bare destroy_session answers, and
answers in the layer the client declared (222 gets the older `user` constructor).
"""

from __future__ import annotations

import asyncio
import logging
import secrets
import struct
from collections.abc import AsyncIterator, Awaitable, Callable

import pytest
import pytest_asyncio
from rawclient import BAD_MSG_NOTIFICATION, TRANSPORTS, RawClient, RpcErrorRaised, _read
from telethon.tl import functions, types

pytestmark = pytest.mark.asyncio

USER_IN_LAYER = {201: 0x020B1422, 222: 0x31774388, 229: types.User.CONSTRUCTOR_ID}
VECTOR = 0x1CB5C415

RawFactory = Callable[[str], Awaitable[RawClient]]


@pytest_asyncio.fixture
async def raw(sandbox) -> AsyncIterator[RawFactory]:
    clients: list[RawClient] = []

    async def factory(transport: str) -> RawClient:
        client = await RawClient.connect(
            sandbox.host, sandbox.port, sandbox.public_key_pem, transport
        )
        clients.append(client)
        return client

    yield factory
    for client in clients:
        await client.close()


def with_layer(layer: int, query: object) -> functions.InvokeWithLayerRequest:
    return functions.InvokeWithLayerRequest(
        layer=layer,
        query=functions.InitConnectionRequest(
            api_id=1,
            device_model="raw",
            system_version="test",
            app_version="1.0",
            system_lang_code="en",
            lang_pack="",
            lang_code="en",
            query=query,
        ),
    )


def read_user(data: bytes, layer: int, number: str) -> types.User:
    """Check the constructor a client on ``layer`` expects, then read the fields.

    The sandbox sets no field that layers after 222 added, so the older form's fields are
    laid out as layer 229's and Telethon can read them once the constructor is swapped.
    """
    (constructor,) = struct.unpack("<I", data[:4])
    assert constructor == USER_IN_LAYER[layer], f"{constructor:08x} in layer {layer}"
    user = _read(struct.pack("<I", types.User.CONSTRUCTOR_ID) + data[4:])
    assert isinstance(user, types.User)
    assert user.phone == number.lstrip("+")
    assert user.is_self
    return user


async def sign_in(sandbox, client: RawClient, number: str, layer: int | None) -> types.User:
    send = functions.auth.SendCodeRequest(number, 1, "raw", types.CodeSettings())
    sent = await client.invoke(with_layer(layer, send) if layer else send)
    assert isinstance(sent.type, types.auth.SentCodeTypeSms)
    sign_in = functions.auth.SignInRequest(
        number, sent.phone_code_hash, phone_code=sandbox.last_code(number)
    )
    answer = await client.exchange(bytes(sign_in))
    # auth.authorization with no flags set: constructor, flags, then the user.
    assert answer.body[:8] == bytes(types.auth.Authorization(user=types.UserEmpty(id=0)))[:8]
    return read_user(answer.body[8:], layer or 201, number)


@pytest.mark.parametrize("layer", [222, 229])
@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_sign_in_verify_resend_cancel_on_every_transport(
    sandbox, raw, phone, transport, layer
):
    client = await raw(transport)
    config = await client.invoke(with_layer(layer, functions.help.GetConfigRequest()))
    assert isinstance(config, types.Config) and config.this_dc == 2

    number = phone(4)
    me = await sign_in(sandbox, client, number, layer)
    users = await client.exchange(bytes(functions.users.GetUsersRequest([types.InputUserSelf()])))
    assert struct.unpack("<Ii", users.body[:8]) == (VECTOR, 1)
    assert read_user(users.body[8:], layer, number).id == me.id

    verified = phone(5)
    sent = await client.invoke(
        functions.account.SendVerifyPhoneCodeRequest(verified, types.CodeSettings())
    )
    code = sandbox.last_code(verified)
    assert await client.invoke(
        functions.account.VerifyPhoneRequest(verified, sent.phone_code_hash, code)
    )

    cancelled = phone(6)
    sent = await client.invoke(
        functions.account.SendVerifyPhoneCodeRequest(cancelled, types.CodeSettings())
    )
    assert isinstance(sent.next_type, types.auth.CodeTypeCall)
    resent = await client.invoke(functions.auth.ResendCodeRequest(cancelled, sent.phone_code_hash))
    assert isinstance(resent.type, types.auth.SentCodeTypeCall)
    assert resent.phone_code_hash != sent.phone_code_hash
    assert await client.invoke(functions.auth.CancelCodeRequest(cancelled, resent.phone_code_hash))
    with pytest.raises(RpcErrorRaised) as raised:
        await client.invoke(
            functions.account.VerifyPhoneRequest(
                cancelled, resent.phone_code_hash, sandbox.last_code(cancelled)
            )
        )
    assert raised.value.message == "PHONE_CODE_EXPIRED"
    assert not [m for m in client.received if m.constructor == BAD_MSG_NOTIFICATION]


@pytest.mark.parametrize("transport", ["padded_intermediate", "obfuscated_padded_intermediate"])
async def test_padding_of_0_to_15_bytes(raw, transport):
    client = await raw(transport)  # the key exchange already went out with random padding
    for padding in range(16):
        pong = await client.invoke(functions.PingRequest(ping_id=padding), padding=padding)
        assert pong.ping_id == padding


async def idle_with_lone_acks(client: RawClient, seconds: float, interval: float) -> int:
    """Send lone msgs_acks, alternating even and odd seq_nos, and expect nothing back.

    Odd is how clients that count every message they send number them; the sandbox must
    take both, as Telegram does. Returns how many acks went out.
    """
    loop = asyncio.get_running_loop()
    deadline, sent = loop.time() + seconds, 0
    while loop.time() < deadline:
        acked = [m.msg_id for m in client.received[-3:]] or [client.new_msg_id() | 1]
        client.send(bytes(types.MsgsAck(msg_ids=acked)), content_related=bool(sent % 2))
        sent += 1
        with pytest.raises(TimeoutError):
            answer = await asyncio.wait_for(client.receive(), interval)
            pytest.fail(f"the sandbox answered a lone ack: {answer}")
    return sent


@pytest.mark.parametrize("transport", ["abridged", "obfuscated_intermediate", "full"])
async def test_lone_acks_while_idle_keep_the_connection_up(sandbox, raw, phone, transport):
    client = await raw(transport)
    await sign_in(sandbox, client, phone(4), 229)
    before = sandbox.stats.get("connections", 0)
    assert await idle_with_lone_acks(client, seconds=3, interval=0.1) >= 20
    assert (await client.invoke(functions.PingRequest(ping_id=7))).ping_id == 7
    assert not [m for m in client.received if m.constructor == BAD_MSG_NOTIFICATION]
    assert sandbox.stats.get("connections", 0) == before  # the same connection throughout


async def test_destroy_session_is_answered_bare(raw):
    client = await raw("intermediate")
    await client.invoke(functions.PingRequest(ping_id=1))
    old_session = client.session_id
    client.session_id = secrets.randbits(63)  # a second session on the same key
    await client.invoke(functions.PingRequest(ping_id=2))

    for session_id, answer_type in [
        (old_session, types.DestroySessionOk),
        (old_session, types.DestroySessionNone),
    ]:
        answer = await client.exchange(bytes(functions.DestroySessionRequest(session_id)))
        assert answer in client.received  # a message of its own, not an rpc_result's content
        destroyed = _read(answer.body)
        assert isinstance(destroyed, answer_type) and destroyed.session_id == session_id


async def test_the_layer_is_kept_with_the_auth_key(sandbox, raw, phone):
    client = await raw("abridged")
    number = phone(4)
    await sign_in(sandbox, client, number, 222)
    client.session_id = secrets.randbits(63)  # a new session declares nothing
    users = await client.exchange(bytes(functions.users.GetUsersRequest([types.InputUserSelf()])))
    read_user(users.body[8:], 222, number)


async def test_an_undeclared_layer_gets_the_oldest_served(sandbox, raw, phone):
    client = await raw("full")
    await sign_in(sandbox, client, phone(4), None)  # reads the layer 201 constructor


async def test_an_unsupported_layer_is_logged_once_per_connection(raw, caplog):
    client = await raw("intermediate")
    with caplog.at_level(logging.WARNING, logger="verification.sandbox"):
        for _ in range(3):
            config = await client.invoke(with_layer(218, functions.help.GetConfigRequest()))
            assert isinstance(config, types.Config)
        await asyncio.sleep(0.05)
    logged = [r.getMessage() for r in caplog.records if "layer 218" in r.getMessage()]
    assert len(logged) == 1, logged
    assert "does not serve; answering in layer 220" in logged[0]
