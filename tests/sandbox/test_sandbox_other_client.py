"""A second, independent MTProto client against the sandbox: Kurigram (a maintained Pyrogram fork).

It shares no networking code with Telethon: its own transports (abridged by default), auth key
exchange, msg_id/seq_no bookkeeping, salts and error mapping. It is pointed at the sandbox only
the way one points it at any test server: its stored DC address and its RSA key table. None of its
protocol code is patched.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import pyrogram  # the `test` extra installs Kurigram; a missing client must fail, not skip
import pytest
import pytest_asyncio
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from pyrogram import Client, errors, raw
from pyrogram.crypto import rsa as pyrogram_rsa

from verification.sandbox import SandboxThread, handshake

pytestmark = pytest.mark.asyncio

SANDBOX_LAYER = 229  # Telethon 1.45's TL layer, the newest the sandbox serves


def _tl_bytes(data: bytes) -> bytes:
    out = (
        bytes([len(data)]) + data
        if len(data) < 254
        else b"\xfe" + len(data).to_bytes(3, "little") + data
    )
    return out + bytes(-len(out) % 4)


def add_sandbox_key(public_key_pem: str | bytes) -> int:
    """Add the sandbox's key to Pyrogram's table under its MTProto fingerprint (auth_key spec)."""
    pem = public_key_pem.encode() if isinstance(public_key_pem, str) else public_key_pem
    numbers = load_pem_public_key(pem).public_numbers()
    n = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
    e = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
    digest = hashlib.sha1(_tl_bytes(n) + _tl_bytes(e)).digest()
    fingerprint = int.from_bytes(digest[-8:], "little", signed=True)
    pyrogram_rsa.server_public_keys[fingerprint] = pyrogram_rsa.PublicKey(numbers.n, numbers.e)
    return fingerprint


def make_client(sandbox: SandboxThread, session_string: str | None = None) -> Client:
    """An in-memory Kurigram client whose storage points at the sandbox.

    Kurigram writes Telegram's DC 2 address into its storage when it creates a session (and maps a
    session string's DC id to Telegram's address); the storage's address and port accessors are
    its DC table, so they are pinned to the sandbox.
    """
    client = Client(
        "sandbox",
        api_id=1,
        api_hash="sandbox",
        in_memory=True,
        session_string=session_string,
        no_updates=True,
        sleep_threshold=0,
    )
    storage = client.storage
    read_address, read_port = storage.server_address, storage.port

    async def server_address(value: object = object) -> object:
        return await read_address(value if value is object else sandbox.host)

    async def port(value: object = object) -> object:
        return await read_port(value if value is object else sandbox.port)

    storage.server_address, storage.port = server_address, port
    return client


ClientFactory = Callable[..., Awaitable[Client]]


@pytest.fixture(scope="module")
def kurigram_sandbox(sandbox: SandboxThread) -> SandboxThread:
    add_sandbox_key(sandbox.public_key_pem)
    return sandbox


@pytest_asyncio.fixture
async def kurigram(
    kurigram_sandbox: SandboxThread, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> AsyncIterator[ClientFactory]:
    """``await kurigram(session_string=None)`` → a connected Kurigram client."""
    # Kurigram appends every error it has no class for (METHOD_NOT_IMPLEMENTED is one) to
    # ./unknown_errors.txt: keep that out of the work tree.
    monkeypatch.chdir(tmp_path)
    clients: list[Client] = []

    async def connect(
        session_string: str | None = None, sandbox: SandboxThread | None = None
    ) -> Client:
        client = make_client(sandbox or kurigram_sandbox, session_string)
        clients.append(client)
        await client.connect()
        return client

    yield connect
    for client in clients:
        if client.is_connected:
            await client.disconnect()


async def test_client_speaks_the_sandbox_layer():
    # Kurigram 2.2.26 is on layer 229 like Telethon 1.45, so every constructor matches (older
    # layers are answered in their own constructors; see test_sandbox_raw_client.py).
    assert pyrogram.raw.all.layer == SANDBOX_LAYER


async def test_connect_init_connection_and_config(kurigram_sandbox, kurigram):
    before = kurigram_sandbox.stats
    client = await kurigram()
    assert client.session.connection.protocol.__class__.__name__ == "TCPAbridged"
    config = await client.invoke(raw.functions.help.GetConfig())
    assert isinstance(config, raw.types.Config)
    assert config.this_dc == 2
    assert {(o.id, o.ip_address, o.port) for o in config.dc_options} >= {
        (2, kurigram_sandbox.host, kurigram_sandbox.port)
    }
    pong = await client.invoke(raw.functions.Ping(ping_id=42))
    assert isinstance(pong, raw.types.Pong) and pong.ping_id == 42
    after = kurigram_sandbox.stats
    assert after["auth_keys_created"] > before.get("auth_keys_created", 0)
    assert after["rpc:help.getConfig"] >= before.get("rpc:help.getConfig", 0) + 2
    # Kurigram sends pings as not content-related (even seq_no), as the spec says they are.
    assert after.get("bad_msg_notification", 0) == before.get("bad_msg_notification", 0)
    with pytest.raises(errors.AuthKeyUnregistered):
        await client.invoke(raw.functions.users.GetUsers(id=[raw.types.InputUserSelf()]))


async def test_sign_in_and_the_verification_methods(kurigram_sandbox, kurigram, phone):
    client = await kurigram()
    number = phone(2)
    sent = await client.send_code(number)
    assert sent.type == pyrogram.enums.SentCodeType.SMS
    assert sent.next_type == pyrogram.enums.NextCodeType.CALL
    with pytest.raises(errors.PhoneCodeInvalid):
        await client.sign_in(number, sent.phone_code_hash, "00000")
    user = await client.sign_in(number, sent.phone_code_hash, kurigram_sandbox.last_code(number))
    assert user.phone_number == number.lstrip("+")
    (me,) = await client.invoke(raw.functions.users.GetUsers(id=[raw.types.InputUserSelf()]))
    assert me.id == user.id and me.is_self

    target = phone(3)
    first = await client.invoke(
        raw.functions.account.SendVerifyPhoneCode(
            phone_number=target, settings=raw.types.CodeSettings()
        )
    )
    assert isinstance(first.type, raw.types.auth.SentCodeTypeSms)
    resent = await client.invoke(
        raw.functions.auth.ResendCode(phone_number=target, phone_code_hash=first.phone_code_hash)
    )
    assert isinstance(resent.type, raw.types.auth.SentCodeTypeCall)
    with pytest.raises(errors.PhoneCodeExpired):  # the resend superseded the first hash
        await client.invoke(
            raw.functions.account.VerifyPhone(
                phone_number=target,
                phone_code_hash=first.phone_code_hash,
                phone_code="33333",
            )
        )
    assert await client.invoke(
        raw.functions.account.VerifyPhone(
            phone_number=target,
            phone_code_hash=resent.phone_code_hash,
            phone_code=kurigram_sandbox.last_code(target),
        )
    )

    other = phone(4)
    pending = await client.invoke(
        raw.functions.account.SendVerifyPhoneCode(
            phone_number=other, settings=raw.types.CodeSettings()
        )
    )
    assert await client.invoke(
        raw.functions.auth.CancelCode(phone_number=other, phone_code_hash=pending.phone_code_hash)
    )
    with pytest.raises(errors.PhoneCodeExpired):
        await client.invoke(
            raw.functions.account.VerifyPhone(
                phone_number=other, phone_code_hash=pending.phone_code_hash, phone_code="44444"
            )
        )


async def test_two_step_verification(kurigram_sandbox, kurigram):
    client = await kurigram()
    number = "+9996628001"
    sent = await client.send_code(number)
    with pytest.raises(errors.SessionPasswordNeeded):
        await client.sign_in(number, sent.phone_code_hash, kurigram_sandbox.last_code(number))
    with pytest.raises(errors.PasswordHashInvalid):
        await client.check_password("not-the-password")
    user = await client.check_password("sandbox-password")
    assert user.phone_number == "9996628001"


async def test_scenario_errors_surface_as_kurigram_errors(kurigram):
    client = await kurigram()
    with pytest.raises(errors.FloodWait) as flood:
        await client.send_code("+9996619001")
    assert flood.value.value == 30
    with pytest.raises(errors.FloodWait) as flood:
        await client.invoke(
            raw.functions.auth.SendCode(
                phone_number="+9996629001",
                api_id=1,
                api_hash="sandbox",
                settings=raw.types.CodeSettings(),
            )
        )
    assert flood.value.value == 30
    with pytest.raises(errors.PhoneNumberInvalid):
        await client.send_code("+9996619002")
    with pytest.raises(errors.BadRequest, match="METHOD_NOT_IMPLEMENTED"):
        await client.invoke(raw.functions.help.GetAppConfig(hash=0))


async def test_dropped_connection_and_a_saved_session(kurigram_sandbox, kurigram, phone):
    client = await kurigram()
    number = phone(5)
    sent = await client.send_code(number)
    user = await client.sign_in(number, sent.phone_code_hash, kurigram_sandbox.last_code(number))
    connections = kurigram_sandbox.stats["connections"]
    kurigram_sandbox.drop_connections()
    deadline = time.monotonic() + 10
    while kurigram_sandbox.stats["connections"] == connections:  # Kurigram reconnects by itself
        assert time.monotonic() < deadline, "Kurigram did not reconnect"
        await asyncio.sleep(0.05)
    pong = await client.invoke(raw.functions.Ping(ping_id=7))
    assert pong.ping_id == 7

    saved = await client.export_session_string()
    await client.disconnect()
    again = await kurigram(session_string=saved)
    assert again.is_connected
    (me,) = await again.invoke(raw.functions.users.GetUsers(id=[raw.types.InputUserSelf()]))
    assert me.id == user.id


async def test_a_key_refused_with_dh_gen_retry_still_works(monkeypatch, kurigram):
    """Kurigram ignores dh_gen_retry and keeps the spec's 256-byte key, which must then work."""
    refused: list[bytes] = []

    def refuse_the_first_key(key: bytes) -> bool:
        # As if the first shared key started with a zero byte (~1 exchange in 256).
        if not refused:
            refused.append(key)
            return True
        return False

    monkeypatch.setattr(handshake, "key_needs_retry", refuse_the_first_key)
    with SandboxThread() as sandbox:
        add_sandbox_key(sandbox.public_key_pem)
        client = await kurigram(sandbox=sandbox)
        assert refused
        assert sandbox.stats["dh_gen_retry"] == 1
        config = await client.invoke(raw.functions.help.GetConfig())
        assert config.this_dc == 2
        assert await client.storage.auth_key() == refused[0]
        await client.disconnect()


async def test_the_key_exchange_salt_is_accepted(monkeypatch, kurigram_sandbox, kurigram):
    """The spec's first salt, new_nonce[0:8] XOR server_nonce[0:8], needs no bad_server_salt."""
    real_initial_salt = handshake.initial_salt
    salts: list[int] = []

    def record(new_nonce: int, server_nonce: int) -> int:
        salt = real_initial_salt(new_nonce, server_nonce)
        new = new_nonce.to_bytes(32, "little", signed=True)
        server = server_nonce.to_bytes(16, "little", signed=True)
        expected = bytes(a ^ b for a, b in zip(new[:8], server[:8], strict=True))
        assert salt == int.from_bytes(expected, "little", signed=True)
        salts.append(salt)
        return salt

    monkeypatch.setattr(handshake, "initial_salt", record)
    client = await kurigram()
    assert len(salts) == 1
    # Kurigram starts its session with salt 0 and learns the current one from bad_server_salt;
    # a client that keeps the exchange's salt (as the spec says) must not be bounced.
    client.session.salt = salts[0]
    before = kurigram_sandbox.stats.get("bad_server_salt", 0)
    config = await client.invoke(raw.functions.help.GetConfig())
    assert config.this_dc == 2
    assert kurigram_sandbox.stats.get("bad_server_salt", 0) == before
    client.session.salt = salts[0] ^ 1  # any other salt still is
    await client.invoke(raw.functions.help.GetConfig())
    assert kurigram_sandbox.stats.get("bad_server_salt", 0) == before + 1
