"""Telegram Passport, the receiving side: the request link, its QR code, and decrypting and
checking what a visitor's Telegram app sends the site's bot.

Following Telegram's Passport manual (core.telegram.org/passport, "Decrypting data"):

1. ``credentials.secret`` is RSA-OAEP (SHA-1, MGF1-SHA-1) encrypted with the bot's public key;
   the bot's private key gives the 32-byte secret back.
2. ``SHA-512(secret + credentials.hash)``: bytes 0-31 are the AES-256 key, 32-47 the IV.
3. ``credentials.data`` is AES-256-CBC encrypted; the plaintext is 32-255 bytes of padding (its
   first byte is the padding's length) followed by the JSON, and its SHA-256 must equal
   ``credentials.hash``.
4. The JSON carries the ``nonce`` the site put in the link (``payload`` in Passport 1.0).

A phone number travels as plain data (``securePlainPhone``): Telegram itself verified it before
the app could keep it in the Passport. The encrypted credentials bind the share to the request.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding as asymmetric_padding
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from .app_settings import get_config

#: What the site asks for: a phone number, in the Passport 1.1 scope format.
PHONE_SCOPE: dict[str, Any] = {"data": ["phone_number"], "v": 1}

KEY_BITS = 2048


class PassportRejected(Exception):
    """Received Passport data the site refuses; ``reason`` is a stable name for the event log."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class SharedValue:
    """One ``secureValue`` of a ``messageActionSecureValuesSentMe``."""

    type: str  # "phone", "email", "personal_details", ...
    plain: str = ""  # the phone number or e-mail address (plain data)
    data: bytes = b""  # encrypted data, for the other types
    hash: bytes = b""


@dataclass(frozen=True)
class SharedPassport:
    """What a visitor's Telegram app sent the bot (transport-neutral)."""

    values: tuple[SharedValue, ...]
    credentials_data: bytes
    credentials_hash: bytes
    credentials_secret: bytes
    user_id: int | None = None


# Keys ---------------------------------------------------------------------------------------


def private_key_generate() -> rsa.RSAPrivateKey:
    return rsa.generate_private_key(public_exponent=65537, key_size=KEY_BITS)


def private_key_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def private_key_load(pem: str) -> rsa.RSAPrivateKey:
    """The RSA private key in ``pem``; ValueError when it is not one."""
    key = serialization.load_pem_private_key(pem.encode(), password=None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ValueError("not an RSA private key")
    return key


def public_key_pem(key: rsa.RSAPrivateKey | rsa.RSAPublicKey) -> str:
    """The public half as an X.509 ``BEGIN PUBLIC KEY`` PEM: what @BotFather and the link take."""
    public = key.public_key() if isinstance(key, rsa.RSAPrivateKey) else key
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def bot_id_from_token(token: str) -> int:
    """A bot token is ``<bot id>:<secret>``; ValueError when it is not."""
    bot_id, _, secret = token.partition(":")
    if not (bot_id.isdigit() and secret):
        raise ValueError("a bot token looks like 123456789:AAE...")
    return int(bot_id)


# The site's bot ----------------------------------------------------------------------------


@dataclass(frozen=True)
class PassportBot:
    """The bot that receives shared Passport data, and its key pair."""

    token: str
    private_key: rsa.RSAPrivateKey

    @property
    def bot_id(self) -> int:
        return bot_id_from_token(self.token)

    @property
    def public_key(self) -> str:
        return public_key_pem(self.private_key)


def private_key_setting_text(value: str) -> str:
    """``PASSPORT_PRIVATE_KEY`` as PEM text: the value itself, or the file it names."""
    if "-----BEGIN" in value:
        return value
    return Path(value).read_text()


@lru_cache(maxsize=4)
def _bot(token: str, key_setting: str) -> PassportBot:
    return PassportBot(token, private_key_load(private_key_setting_text(key_setting)))


_embedded_bot: PassportBot | None = None


def embedded_bot_set(bot: PassportBot | None) -> None:
    """The embedded sandbox's bot, used when ``PASSPORT_BOT_TOKEN`` is not set."""
    global _embedded_bot
    _embedded_bot = bot


def passport_bot() -> PassportBot | None:
    """The configured bot (or the embedded sandbox's); None when Passport is off.

    A misconfigured key counts as off here; the system checks say what is wrong.
    """
    config = get_config()
    token = config["PASSPORT_BOT_TOKEN"]
    if not token:
        return _embedded_bot
    try:
        return _bot(token, config["PASSPORT_PRIVATE_KEY"])
    except (OSError, ValueError, TypeError):
        return None


# The request --------------------------------------------------------------------------------


def nonce_new() -> str:
    """A fresh nonce: random, URL-safe, one per request."""
    return secrets.token_urlsafe(24)


def request_url(
    *, bot_id: int, public_key: str, nonce: str, scope: dict[str, Any] | None = None
) -> str:
    """The ``tg://resolve?domain=telegrampassport`` link a Telegram app opens."""
    query = urlencode(
        {
            "domain": "telegrampassport",
            "bot_id": bot_id,
            "scope": json.dumps(scope or PHONE_SCOPE, separators=(",", ":")),
            "public_key": public_key,
            "nonce": nonce,
        },
        quote_via=quote,
    )
    return f"tg://resolve?{query}"


def qr_svg(url: str) -> str:
    """The link as a QR code, an inline ``<svg>`` element (no XML declaration)."""
    import segno

    return segno.make_qr(url, error="m").svg_inline(
        scale=4, dark="#000", light="#fff", title="Telegram Passport"
    )


# Decrypting ---------------------------------------------------------------------------------


def _oaep() -> asymmetric_padding.OAEP:
    return asymmetric_padding.OAEP(
        mgf=asymmetric_padding.MGF1(algorithm=hashes.SHA1()),  # noqa: S303 - Passport's choice
        algorithm=hashes.SHA1(),
        label=None,
    )


def secret_decrypt(key: rsa.RSAPrivateKey, encrypted: bytes) -> bytes:
    """Step 1: the credentials secret; KEY_MISMATCH when this key did not encrypt it."""
    try:
        return key.decrypt(encrypted, _oaep())
    except ValueError:
        raise PassportRejected(
            "KEY_MISMATCH", "the secret was not encrypted for this bot's key"
        ) from None


def data_key_iv(secret: bytes, data_hash: bytes) -> tuple[bytes, bytes]:
    """Step 2: AES key and IV from ``SHA-512(secret + hash)``."""
    digest = hashlib.sha512(secret + data_hash).digest()
    return digest[:32], digest[32:48]


def data_decrypt(data: bytes, secret: bytes, data_hash: bytes) -> bytes:
    """Step 3: decrypt, check the hash, strip the padding; HASH_MISMATCH on any tampering."""
    if not data or len(data) % 16:
        raise PassportRejected("HASH_MISMATCH", "the data is not whole AES blocks")
    key, iv = data_key_iv(secret, data_hash)
    decryptor = Cipher(algorithms.AES(key), modes.CBC(iv)).decryptor()
    padded = decryptor.update(data) + decryptor.finalize()
    if not secrets.compare_digest(hashlib.sha256(padded).digest(), data_hash):
        raise PassportRejected("HASH_MISMATCH", "the data does not match its hash")
    length = padded[0]
    if not 32 <= length <= 255 or length > len(padded):
        raise PassportRejected("HASH_MISMATCH", "bad padding")
    return padded[length:]


def credentials_decrypt(key: rsa.RSAPrivateKey, shared: SharedPassport) -> dict[str, Any]:
    """Steps 1-3 on the credentials, parsed as JSON."""
    secret = secret_decrypt(key, shared.credentials_secret)
    plain = data_decrypt(shared.credentials_data, secret, shared.credentials_hash)
    try:
        credentials = json.loads(plain)
    except ValueError:
        raise PassportRejected("CREDENTIALS_INVALID", "the credentials are not JSON") from None
    if not isinstance(credentials, dict):
        raise PassportRejected("CREDENTIALS_INVALID", "the credentials are not an object")
    return credentials


def credentials_nonce(credentials: dict[str, Any]) -> str:
    """Step 4: the nonce the credentials carry (``payload`` in Passport 1.0)."""
    nonce = credentials.get("nonce") or credentials.get("payload")
    if not isinstance(nonce, str) or not nonce:
        raise PassportRejected("NONCE_MISSING", "the credentials carry no nonce")
    return nonce


def shared_phone(shared: SharedPassport) -> str:
    """The phone number shared; NO_PHONE when the visitor shared none."""
    for value in shared.values:
        if value.type == "phone" and value.plain:
            return value.plain
    raise PassportRejected("NO_PHONE", "no phone number was shared")
