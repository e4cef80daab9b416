"""The sandbox as a visitor's Telegram app: sharing Passport data with a bot.

Written from Telegram's Passport manual independently of the site's decryption
(:mod:`verification.passport`), so that a test of one against the other means something.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from telethon.tl import types


def pad_for(plain: bytes) -> bytes:
    """Random padding of 32-255 bytes whose first byte is its length, filling whole blocks."""
    length = 32 + (-(len(plain) + 32) % 16) + 16 * (os.urandom(1)[0] % 8)
    return bytes([length]) + os.urandom(length - 1)


def encrypt_data(
    plain: bytes, *, secret: bytes | None = None, pad: bytes | None = None
) -> tuple[bytes, bytes, bytes]:
    """``(encrypted data, data hash, secret)``: AES-256-CBC under SHA-512(secret + hash)."""
    secret = os.urandom(32) if secret is None else secret
    padded = (pad_for(plain) if pad is None else pad) + plain
    data_hash = hashlib.sha256(padded).digest()
    secret_hash = hashlib.sha512(secret + data_hash).digest()
    encryptor = Cipher(algorithms.AES(secret_hash[:32]), modes.CBC(secret_hash[32:48])).encryptor()
    return encryptor.update(padded) + encryptor.finalize(), data_hash, secret


def encrypt_secret(public_key_pem: str, secret: bytes) -> bytes:
    """RSA-OAEP (SHA-1) with the bot's public key, as the bot registered it with BotFather."""
    key = serialization.load_pem_public_key(public_key_pem.encode())
    assert isinstance(key, rsa.RSAPublicKey)
    oaep = padding.OAEP(mgf=padding.MGF1(hashes.SHA1()), algorithm=hashes.SHA1(), label=None)
    return key.encrypt(secret, oaep)


@dataclass
class Tampering:
    """Ways a test spoils a share (each one must be rejected by the site)."""

    flip_data_byte: int | None = None  # index of a credentials-data byte to flip
    flip_hash_byte: int | None = None
    flip_secret_byte: int | None = None
    wrong_key_pem: str | None = None  # encrypt for another bot's key
    no_phone: bool = False


def secure_values_sent(
    *,
    phone_digits: str,
    public_key_pem: str,
    nonce: str,
    tampering: Tampering | None = None,
) -> types.MessageActionSecureValuesSentMe:
    """The action a Telegram app's ``account.acceptAuthorization`` makes the bot receive."""
    tampering = tampering or Tampering()
    credentials: dict[str, Any] = {"secure_data": {}, "nonce": nonce}
    data, data_hash, secret = encrypt_data(json.dumps(credentials).encode())
    encrypted_secret = encrypt_secret(tampering.wrong_key_pem or public_key_pem, secret)
    data, data_hash, encrypted_secret = (
        _flip(data, tampering.flip_data_byte),
        _flip(data_hash, tampering.flip_hash_byte),
        _flip(encrypted_secret, tampering.flip_secret_byte),
    )
    values = []
    if not tampering.no_phone:
        phone = types.SecurePlainPhone(phone=phone_digits)
        values.append(
            types.SecureValue(
                type=types.SecureValueTypePhone(),
                hash=hashlib.sha256(phone_digits.encode()).digest(),
                plain_data=phone,
            )
        )
    else:
        email = "sandbox@example.invalid"
        values.append(
            types.SecureValue(
                type=types.SecureValueTypeEmail(),
                hash=hashlib.sha256(email.encode()).digest(),
                plain_data=types.SecurePlainEmail(email=email),
            )
        )
    return types.MessageActionSecureValuesSentMe(
        values=values,
        credentials=types.SecureCredentialsEncrypted(
            data=data, hash=data_hash, secret=encrypted_secret
        ),
    )


def _flip(value: bytes, index: int | None) -> bytes:
    if index is None:
        return value
    changed = bytearray(value)
    changed[index % len(changed)] ^= 0x01
    return bytes(changed)


def service_message(
    *, message_id: int, from_user: int, to_bot: int, action: object
) -> types.MessageService:
    return types.MessageService(
        id=message_id,
        peer_id=types.PeerUser(user_id=from_user),
        from_id=types.PeerUser(user_id=from_user),
        date=int(time.time()),
        action=action,
    )
