"""Encryption at rest for Telegram secrets (phone_code_hash, sender-account sessions).

Values are Fernet tokens. ``VERIFICATION["ENCRYPTION_KEYS"]`` lists key material newest first:
the first key encrypts, every key decrypts (:class:`~cryptography.fernet.MultiFernet`), and
``manage.py verification_rotate_keys`` re-encrypts stored values with the first key so older
keys can be dropped. Without ``ENCRYPTION_KEYS`` the key is ``ENCRYPTION_KEY``, or else
``SECRET_KEY`` (with ``SECRET_KEY_FALLBACKS`` still decrypting, Django's own way of rotating it).

A stored value that no configured key can read is never passed off as empty: :func:`decrypt`
logs an error and raises :class:`DecryptionError`, and :class:`EncryptedTextField` loads it as an
:class:`Undecryptable` (test with :func:`is_undecryptable`) that saves back unchanged.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from functools import cache, lru_cache
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.db import models

from .app_settings import get_config

logger = logging.getLogger("verification")

UNREADABLE_HINT = (
    "add the key it was written with (the old SECRET_KEY if no encryption key was set) to "
    "VERIFICATION['ENCRYPTION_KEYS'], after the new one, and run "
    "`manage.py verification_rotate_keys`"
)


class DecryptionError(Exception):
    """A value encrypted at rest that none of the configured keys can decrypt."""


class Undecryptable(str):
    """What an :class:`EncryptedTextField` holds when its stored value cannot be decrypted.

    It equals ``""`` (so string code keeps working and nothing secret leaks), but it is not an
    empty value: code about to *use* a secret checks :func:`is_undecryptable` and reports the
    key problem instead of, say, opening a logged-out Telegram client. The stored ciphertext is
    kept in :attr:`ciphertext` so that saving the row writes it back untouched: once the right
    key is configured again, the value is readable again.
    """

    ciphertext: str

    def __new__(cls, ciphertext: str) -> Undecryptable:
        value = super().__new__(cls, "")
        value.ciphertext = ciphertext
        return value

    def __repr__(self) -> str:
        # Never the ciphertext: reprs end up in logs and tracebacks.
        return "<Undecryptable>"

    def __reduce__(self) -> tuple[Any, ...]:
        # str's own pickling would rebuild it from "" and lose the ciphertext (copy.deepcopy too).
        return (Undecryptable, (self.ciphertext,))


def is_undecryptable(value: object) -> bool:
    """Whether ``value`` is an encrypted field's value that no configured key could decrypt."""
    return isinstance(value, Undecryptable)


def encryption_keys() -> tuple[str, ...]:
    """The key material in use, newest (the one that encrypts) first."""
    config = get_config()
    configured = config["ENCRYPTION_KEYS"]
    if isinstance(configured, (list, tuple)):
        # Blank and repeated entries are reported by check W040; a blank key must never encrypt.
        keys = tuple(dict.fromkeys(key for key in configured if isinstance(key, str) and key))
        if keys:
            return keys
    if config["ENCRYPTION_KEY"]:
        return (config["ENCRYPTION_KEY"],)
    fallbacks = getattr(settings, "SECRET_KEY_FALLBACKS", [])
    return tuple(dict.fromkeys([settings.SECRET_KEY, *(key for key in fallbacks if key)]))


@cache
def _fernet(key_material: str) -> Fernet:
    # Unchanged since the single-key version: rows written then stay readable.
    digest = hashlib.sha256(b"verification-at-rest:" + key_material.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


@lru_cache(maxsize=16)
def _multi_fernet(keys: tuple[str, ...]) -> MultiFernet:
    return MultiFernet([_fernet(key) for key in keys])


def encrypt(value: str) -> str:
    """``value`` encrypted with the newest key."""
    return _multi_fernet(encryption_keys()).encrypt(value.encode()).decode()


def decrypt(token: str, *, source: str = "") -> str:
    """Decrypt a value written by :func:`encrypt` with any configured key.

    A token none of them can read is logged as an error on the ``verification`` logger (naming
    ``source``, e.g. ``"verification.SenderAccount.session"``, never the token) and raises
    :class:`DecryptionError`.
    """
    try:
        return _multi_fernet(encryption_keys()).decrypt(token.encode()).decode()
    except InvalidToken:
        where = f" ({source})" if source else ""
        message = (
            f"A value encrypted at rest{where} cannot be decrypted with any configured key: "
            f"{UNREADABLE_HINT}."
        )
        logger.error(message)
        raise DecryptionError(message) from None


def rotate(token: str) -> str:
    """``token`` encrypted with the newest key; ``token`` itself when it already is.

    Raises :class:`DecryptionError` (without logging: the caller reports) when no configured
    key can read it.
    """
    keys = encryption_keys()
    try:
        _fernet(keys[0]).decrypt(token.encode())
    except InvalidToken:
        pass
    else:
        return token
    try:
        # MultiFernet.rotate keeps the token's original timestamp.
        return _multi_fernet(keys).rotate(token.encode()).decode()
    except InvalidToken:
        raise DecryptionError(
            f"A value encrypted at rest cannot be decrypted with any configured key: "
            f"{UNREADABLE_HINT}."
        ) from None


# Unparametrised: Django's fields take no type arguments at runtime (no __class_getitem__).
class EncryptedTextField(models.TextField):  # type: ignore[type-arg]
    """A text column stored Fernet-encrypted; Python code only ever sees plaintext.

    A stored value no configured key can decrypt loads as an :class:`Undecryptable` (equal to
    ``""``) rather than raising, so a page or the admin listing the row still renders; the
    error is logged by :func:`decrypt`. Saving the row writes that value's original ciphertext
    back, never an encryption of ``""``: losing a Telegram session because someone edited the
    account's label while a key was missing would be unrecoverable, while keeping it lets the
    restored key read it again.
    """

    def from_db_value(self, value, expression, connection):  # type: ignore[no-untyped-def]
        if not value:
            return ""
        model = getattr(self, "model", None)
        source = f"{model._meta.label}.{self.name}" if model is not None else ""
        try:
            return decrypt(value, source=source)
        except DecryptionError:
            return Undecryptable(value)

    def get_prep_value(self, value):  # type: ignore[no-untyped-def]
        if isinstance(value, Undecryptable):
            return value.ciphertext
        value = super().get_prep_value(value)
        if not value:
            return ""
        return encrypt(value)
