"""Server half of Telegram's SRP-2048 password check (https://core.telegram.org/api/srp).

The client half is ``telethon.password.compute_check``; this module keeps the verifier
``v = g^x mod p`` and checks the client's proof ``M1``.
"""

from __future__ import annotations

import hashlib
import os
import secrets
from dataclasses import dataclass

from telethon.tl import types

from .crypto import DH_G, DH_PRIME, DH_PRIME_BYTES


def _sha256(*parts: bytes) -> bytes:
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part)
    return digest.digest()


def _pad(value: int) -> bytes:
    return value.to_bytes(256, "big")


def password_hash(password: str, salt1: bytes, salt2: bytes) -> int:
    """x = PH2(password, salt1, salt2) as defined by the SRP page."""
    ph1 = _sha256(salt2, _sha256(salt1, password.encode(), salt1), salt2)
    pbkdf = hashlib.pbkdf2_hmac("sha512", ph1, salt1, 100000)
    return int.from_bytes(_sha256(salt2, pbkdf, salt2), "big")


@dataclass(frozen=True)
class PasswordVerifier:
    """What the server stores for a 2FA password: salts and the SRP verifier, never the password."""

    salt1: bytes
    salt2: bytes
    verifier: int

    @classmethod
    def create(cls, password: str) -> PasswordVerifier:
        salt1, salt2 = os.urandom(40), os.urandom(16)
        x = password_hash(password, salt1, salt2)
        return cls(salt1, salt2, pow(DH_G, x, DH_PRIME))

    def algo(self) -> types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow:
        return types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
            salt1=self.salt1, salt2=self.salt2, g=DH_G, p=DH_PRIME_BYTES
        )

    def to_json(self) -> dict[str, str]:
        return {"salt1": self.salt1.hex(), "salt2": self.salt2.hex(), "v": f"{self.verifier:x}"}

    @classmethod
    def from_json(cls, data: dict[str, str]) -> PasswordVerifier:
        return cls(bytes.fromhex(data["salt1"]), bytes.fromhex(data["salt2"]), int(data["v"], 16))


@dataclass(frozen=True)
class SrpChallenge:
    """One ``account.getPassword`` answer: the server's ephemeral secret b and public B."""

    srp_id: int
    b: int
    B: int

    @classmethod
    def create(cls, verifier: PasswordVerifier) -> SrpChallenge:
        k = int.from_bytes(_sha256(DH_PRIME_BYTES, _pad(DH_G)), "big")
        while True:
            b = int.from_bytes(os.urandom(256), "big")
            g_b = pow(DH_G, b, DH_PRIME)
            B = (k * verifier.verifier + g_b) % DH_PRIME
            # The client rejects a B (and a g_b it derives) too close to 0 or p.
            if B.bit_length() > 2048 - 64 and DH_PRIME - B > 2 ** (2048 - 64):
                return cls(secrets.randbits(63), b, B)

    @property
    def B_bytes(self) -> bytes:
        return _pad(self.B)

    def check(self, verifier: PasswordVerifier, A_bytes: bytes, M1: bytes) -> bool:
        """True when the client's M1 proves knowledge of the password."""
        A = int.from_bytes(A_bytes, "big")
        if not 1 < A < DH_PRIME - 1:
            return False
        u = int.from_bytes(_sha256(_pad(A), self.B_bytes), "big")
        if u == 0:
            return False
        S = pow(A * pow(verifier.verifier, u, DH_PRIME), self.b, DH_PRIME)
        K = _sha256(_pad(S))
        h_p, h_g = _sha256(DH_PRIME_BYTES), _sha256(_pad(DH_G))
        expected = _sha256(
            bytes(x ^ y for x, y in zip(h_p, h_g, strict=True)),
            _sha256(verifier.salt1),
            _sha256(verifier.salt2),
            _pad(A),
            self.B_bytes,
            K,
        )
        return secrets.compare_digest(expected, M1)
