"""A shared key that would start with a zero byte is refused with dh_gen_retry, so both sides
always hold the same 256 bytes (Telethon drops a leading zero; the spec keeps it)."""

from __future__ import annotations

import builtins

import pytest
from telethon import functions

from verification.sandbox import SandboxThread, handshake

pytestmark = pytest.mark.asyncio


async def test_leading_zero_key_gets_dh_gen_retry_and_the_client_recovers(monkeypatch, connect):
    real_pow = builtins.pow
    forced = []

    def pow_with_one_small_key(base, exponent, modulus=None):
        result = real_pow(base, exponent, modulus)
        # The first g_b ** a: pretend it came out below 2**2040 (a leading zero byte).
        if modulus is not None and base != 3 and not forced:
            forced.append(True)
            return result >> 16
        return result

    monkeypatch.setattr(handshake, "pow", pow_with_one_small_key, raising=False)
    with SandboxThread() as sandbox:
        from telethon.crypto import rsa

        rsa.add_key(sandbox.public_key_pem, old=False)
        client = await connect(port=sandbox.port)
        config = await client(functions.help.GetConfigRequest())
        assert config.this_dc == 2
        await client.disconnect()
        assert forced
        assert sandbox.stats["dh_gen_retry"] == 1
        assert sandbox.stats["auth_keys_created"] == 1
