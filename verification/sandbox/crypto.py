"""Cryptographic building blocks of the MTProto server side.

Everything here follows https://core.telegram.org/mtproto/auth_key and
https://core.telegram.org/mtproto/description (MTProto 2.0). Telethon's AES-IGE and TL
serialisation are reused; the RSA key is handled with ``cryptography``.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import secrets
import struct
import time
from dataclasses import dataclass

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa as crypto_rsa
from telethon.crypto import AES
from telethon.extensions import BinaryReader
from telethon.tl.tlobject import TLObject

# The 2048-bit safe prime Telegram itself uses for DH (and SRP), with generator 3. Telethon
# recognises it and skips its slow primality check.
DH_PRIME = int(
    "C71CAEB9C6B1C9048E6C522F70F13F73980D40238E3E21C14934D037563D930F"
    "48198A0AA7C14058229493D22530F4DBFA336F6E0AC925139543AED44CCE7C37"
    "20FD51F69458705AC68CD4FE6B6B13ABDC9746512969328454F18FAF8C595F64"
    "2477FE96BB2A941D5BCD1D4AC8CC49880708FA9B378E3C4F3A9060BEE67CF9A4"
    "A4A695811051907E162753B56B0F6B410DBA74D8A84B2A14B3144E0EF1284754"
    "FD17ED950D5965B4B9DD46582DB1178D169C6BC465B0D6FF9CA3928FEF5B9AE4"
    "E418FC15E83EBEA0F87FA9FF5EED70050DED2849F47BF959D956850CE929851F"
    "0D8115F635B105EE2E4E15D04B2454BF6F4FADF034B10403119CD8E3B92FCC5B",
    16,
)
DH_G = 3
DH_PRIME_BYTES = DH_PRIME.to_bytes(256, "big")
DH_SAFETY_MARGIN = 2 ** (2048 - 64)


def int_to_bytes(value: int) -> bytes:
    """Big-endian bytes without left padding, exactly as Telethon builds pq, g_b and auth keys."""
    return value.to_bytes((value.bit_length() + 7) // 8, "big")


def dh_value_is_safe(value: int) -> bool:
    """The range check the spec asks both sides to apply to g, g_a and g_b."""
    return 1 < value < DH_PRIME - 1 and DH_SAFETY_MARGIN <= value <= DH_PRIME - DH_SAFETY_MARGIN


# --- RSA ----------------------------------------------------------------------------------------


class ServerKey:
    """The sandbox's 2048-bit RSA key pair and its MTProto fingerprint."""

    def __init__(self, private_key: crypto_rsa.RSAPrivateKey) -> None:
        if private_key.key_size != 2048:
            raise ValueError("MTProto needs a 2048-bit RSA key")
        self._key = private_key
        numbers = private_key.private_numbers()
        self.n = numbers.public_numbers.n
        self.e = numbers.public_numbers.e
        self._d = numbers.d
        digest = hashlib.sha1(
            TLObject.serialize_bytes(int_to_bytes(self.n))
            + TLObject.serialize_bytes(int_to_bytes(self.e))
        ).digest()
        self.fingerprint: int = struct.unpack("<q", digest[-8:])[0]

    @classmethod
    def generate(cls) -> ServerKey:
        return cls(crypto_rsa.generate_private_key(public_exponent=65537, key_size=2048))

    @classmethod
    def from_pem(cls, pem: bytes | str) -> ServerKey:
        """Load a PKCS#1 (``BEGIN RSA PRIVATE KEY``) or PKCS#8 (``BEGIN PRIVATE KEY``) PEM."""
        if isinstance(pem, str):
            pem = pem.encode()
        key = serialization.load_pem_private_key(pem, password=None)
        if not isinstance(key, crypto_rsa.RSAPrivateKey):
            raise ValueError("not an RSA private key")
        return cls(key)

    @property
    def private_pem(self) -> str:
        return self._key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.TraditionalOpenSSL,
            serialization.NoEncryption(),
        ).decode()

    @property
    def public_pem(self) -> str:
        """PKCS#1 PEM (``BEGIN RSA PUBLIC KEY``), as ``telethon.crypto.rsa.add_key`` reads it."""
        return (
            self._key.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.PKCS1)
            .decode()
        )

    def decrypt_raw(self, data: bytes) -> bytes | None:
        """Textbook RSA decryption to 256 bytes (MTProto does its own padding)."""
        value = int.from_bytes(data, "big")
        if len(data) > 256 or value >= self.n:
            return None
        return pow(value, self._d, self.n).to_bytes(256, "big")


def decrypt_inner_data(key: ServerKey, encrypted: bytes) -> bytes | None:
    """Recover the serialised ``p_q_inner_data*`` sent in ``req_DH_params``.

    Two encodings exist: the original ``sha1(data) + data + random`` (255 bytes, used by Telethon
    1.45) and RSA_PAD (AES-wrapped, used by current official clients). Both are accepted; the
    returned buffer starts with the TL object and may carry trailing padding.
    """
    plain = key.decrypt_raw(encrypted)
    if plain is None:
        return None
    data = _parse_sha1_scheme(plain[1:]) if plain[0] == 0 else None
    return data if data is not None else _parse_rsa_pad(plain)


def _parse_sha1_scheme(blob: bytes) -> bytes | None:

    digest, data = blob[:20], blob[20:]
    try:
        with BinaryReader(data) as reader:
            reader.tgread_object()
            length = reader.tell_position()
    except Exception:
        return None
    if hashlib.sha1(data[:length]).digest() != digest:
        return None
    return data[:length]


def _parse_rsa_pad(blob: bytes) -> bytes | None:
    temp_key_xor, aes_encrypted = blob[:32], blob[32:]
    temp_key = bytes(
        a ^ b for a, b in zip(temp_key_xor, hashlib.sha256(aes_encrypted).digest(), strict=True)
    )
    data_with_hash = AES.decrypt_ige(aes_encrypted, temp_key, bytes(32))
    data_with_padding = data_with_hash[:192][::-1]
    if hashlib.sha256(temp_key + data_with_padding).digest() != data_with_hash[192:]:
        return None
    return data_with_padding


# --- primes for resPQ ---------------------------------------------------------------------------


def _is_probable_prime(n: int) -> bool:
    if n < 2:
        return False
    small = (2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37)
    for p in small:
        if n % p == 0:
            return n == p
    d, r = n - 1, 0
    while d % 2 == 0:
        d //= 2
        r += 1
    # These bases make Miller-Rabin deterministic far beyond 64 bits.
    for a in small:
        x = pow(a, d, n)
        if x in (1, n - 1):
            continue
        for _ in range(r - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def random_prime(bits: int) -> int:
    while True:
        candidate = secrets.randbits(bits) | (1 << (bits - 1)) | 1
        if _is_probable_prime(candidate):
            return candidate


def make_pq() -> tuple[int, int, int]:
    """Two distinct ~31-bit primes and their product, as Telegram uses for the pq challenge."""
    while True:
        p, q = random_prime(31), random_prime(31)
        if p != q:
            p, q = min(p, q), max(p, q)
            return p * q, p, q


# --- message encryption (MTProto 2.0) -----------------------------------------------------------


def _aes_key_iv(auth_key: bytes, msg_key: bytes, x: int) -> tuple[bytes, bytes]:
    sha256_a = hashlib.sha256(msg_key + auth_key[x : x + 36]).digest()
    sha256_b = hashlib.sha256(auth_key[x + 40 : x + 76] + msg_key).digest()
    aes_key = sha256_a[:8] + sha256_b[8:24] + sha256_a[24:32]
    aes_iv = sha256_b[:8] + sha256_a[8:24] + sha256_b[24:32]
    return aes_key, aes_iv


def decrypt_client_message(auth_key: bytes, msg_key: bytes, encrypted: bytes) -> bytes | None:
    """Decrypt a client→server payload (x = 0) and check msg_key; None if it does not match."""
    if len(encrypted) % 16 or not encrypted:
        return None
    aes_key, aes_iv = _aes_key_iv(auth_key, msg_key, 0)
    plain = AES.decrypt_ige(encrypted, aes_key, aes_iv)
    if hashlib.sha256(auth_key[88:120] + plain).digest()[8:24] != msg_key:
        return None
    return plain


def quick_ack_token(auth_key: bytes, plain: bytes) -> int:
    """The transport quick-ack value: the first 32 bits of msg_key_large (client side)."""
    return struct.unpack("<I", hashlib.sha256(auth_key[88:120] + plain).digest()[:4])[0]


def encrypt_server_message(auth_key: bytes, key_id: int, plain: bytes) -> bytes:
    """Encrypt a server→client payload (x = 8), adding 12..1024 bytes of random padding."""
    padding = os.urandom(-(len(plain) + 12) % 16 + 12)
    data = plain + padding
    msg_key = hashlib.sha256(auth_key[96:128] + data).digest()[8:24]
    aes_key, aes_iv = _aes_key_iv(auth_key, msg_key, 8)
    return struct.pack("<Q", key_id) + msg_key + AES.encrypt_ige(data, aes_key, aes_iv)


def auth_key_id(auth_key: bytes) -> int:
    """The low 64 bits of sha1(auth_key), as an unsigned integer."""
    return struct.unpack("<Q", hashlib.sha1(auth_key).digest()[-8:])[0]


# --- message ids and salts ----------------------------------------------------------------------


class MessageIdClock:
    """Server msg_ids: time-based, strictly increasing, ≡1 (mod 4) for responses, ≡3 otherwise."""

    def __init__(self) -> None:
        self._last = 0

    def next(self, *, response: bool) -> int:
        now = time.time()
        msg_id = (int(now) << 32) | (int((now % 1) * 2**32) & 0xFFFFFFFC)
        residue = 1 if response else 3
        msg_id = (msg_id & ~3) | residue
        if msg_id <= self._last:
            msg_id = ((self._last & ~3) + 4) | residue
        self._last = msg_id
        return msg_id


SALT_PERIOD = 1800  # seconds each server salt is the current one


@dataclass(frozen=True)
class Salt:
    valid_since: int
    valid_until: int
    salt: int


class SaltBook:
    """Per-auth-key server salts derived from a secret, so no per-key table is needed.

    A salt is the current one for ``SALT_PERIOD`` seconds; the previous one stays accepted for
    another period so a client switching at the boundary is not bounced.
    """

    def __init__(self, secret: bytes) -> None:
        self.secret = secret

    def _salt(self, key_id: int, period: int) -> int:
        mac = hmac.new(self.secret, struct.pack("<Qq", key_id, period), hashlib.sha256).digest()
        return struct.unpack("<q", mac[:8])[0]

    def current(self, key_id: int, now: float | None = None) -> int:
        period = int((time.time() if now is None else now) // SALT_PERIOD)
        return self._salt(key_id, period)

    def is_valid(self, key_id: int, salt: int, now: float | None = None) -> bool:
        period = int((time.time() if now is None else now) // SALT_PERIOD)
        return salt in (self._salt(key_id, period), self._salt(key_id, period - 1))

    def future(self, key_id: int, count: int, now: float | None = None) -> list[Salt]:
        period = int((time.time() if now is None else now) // SALT_PERIOD)
        return [
            Salt(p * SALT_PERIOD, (p + 1) * SALT_PERIOD, self._salt(key_id, p))
            for p in range(period, period + count)
        ]
