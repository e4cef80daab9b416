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


def credentials_encrypted(
    *, public_key_pem: str, nonce: str, tampering: Tampering | None = None
) -> types.SecureCredentialsEncrypted:
    """What a Telegram app passes to ``account.acceptAuthorization``: the credentials JSON
    (no ``secure_data`` entries, as plain values such as a phone carry none) with the bot's
    nonce, encrypted for the bot's public key."""
    tampering = tampering or Tampering()
    credentials: dict[str, Any] = {"secure_data": {}, "nonce": nonce}
    data, data_hash, secret = encrypt_data(json.dumps(credentials).encode())
    encrypted_secret = encrypt_secret(tampering.wrong_key_pem or public_key_pem, secret)
    return types.SecureCredentialsEncrypted(
        data=_flip(data, tampering.flip_data_byte),
        hash=_flip(data_hash, tampering.flip_hash_byte),
        secret=_flip(encrypted_secret, tampering.flip_secret_byte),
    )


def plain_value(plain: types.SecurePlainPhone | types.SecurePlainEmail) -> types.SecureValue:
    """A Passport value holding a phone or an e-mail address, hashed as the server keeps it."""
    if isinstance(plain, types.SecurePlainPhone):
        kind: types.TypeSecureValueType = types.SecureValueTypePhone()
        text = plain.phone
    else:
        kind, text = types.SecureValueTypeEmail(), plain.email
    return types.SecureValue(
        type=kind, hash=hashlib.sha256(text.encode()).digest(), plain_data=plain
    )


def secure_values_sent(
    *,
    phone_digits: str,
    public_key_pem: str,
    nonce: str,
    tampering: Tampering | None = None,
) -> types.MessageActionSecureValuesSentMe:
    """The action a Telegram app's ``account.acceptAuthorization`` makes the bot receive."""
    tampering = tampering or Tampering()
    if tampering.no_phone:
        value = plain_value(types.SecurePlainEmail(email="sandbox@example.invalid"))
    else:
        value = plain_value(types.SecurePlainPhone(phone=phone_digits))
    return types.MessageActionSecureValuesSentMe(
        values=[value],
        credentials=credentials_encrypted(
            public_key_pem=public_key_pem, nonce=nonce, tampering=tampering
        ),
    )


#: Scope names of Telegram's Passport manual → the value types they ask for.
SCOPE_TYPES: dict[str, type[types.TypeSecureValueType]] = {
    "personal_details": types.SecureValueTypePersonalDetails,
    "passport": types.SecureValueTypePassport,
    "driver_license": types.SecureValueTypeDriverLicense,
    "identity_card": types.SecureValueTypeIdentityCard,
    "internal_passport": types.SecureValueTypeInternalPassport,
    "address": types.SecureValueTypeAddress,
    "utility_bill": types.SecureValueTypeUtilityBill,
    "bank_statement": types.SecureValueTypeBankStatement,
    "rental_agreement": types.SecureValueTypeRentalAgreement,
    "passport_registration": types.SecureValueTypePassportRegistration,
    "temporary_registration": types.SecureValueTypeTemporaryRegistration,
    "phone_number": types.SecureValueTypePhone,
    "email": types.SecureValueTypeEmail,
}


def _required(item: object) -> types.SecureRequiredType:
    if isinstance(item, str):
        item = {"type": item}
    if not isinstance(item, dict) or item.get("type") not in SCOPE_TYPES:
        raise ValueError(f"not a Passport scope element: {item!r}")
    return types.SecureRequiredType(
        type=SCOPE_TYPES[item["type"]](),
        native_names=bool(item.get("native_names")) or None,
        selfie_required=bool(item.get("selfie")) or None,
        translation_required=bool(item.get("translation")) or None,
    )


def required_types(scope: object) -> list[types.TypeSecureRequiredType]:
    """A link's ``scope`` (``{"data": [...], "v": 1}``) as an authorization form's list;
    ValueError if it is not one."""
    if not isinstance(scope, dict) or not isinstance(scope.get("data"), list):
        raise ValueError("a Passport scope is an object with a data list")
    wanted: list[types.TypeSecureRequiredType] = []
    for item in scope["data"]:
        if isinstance(item, dict) and "one_of" in item:
            wanted.append(
                types.SecureRequiredTypeOneOf(types=[_required(i) for i in item["one_of"]])
            )
        else:
            wanted.append(_required(item))
    return wanted


def type_name(kind: object) -> str:
    """A value type's TL class name, the key values are stored under."""
    return type(kind).__name__


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
