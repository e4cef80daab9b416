"""Encryption at rest for Telegram secrets (phone_code_hash, sender-account sessions)."""

from __future__ import annotations

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings
from django.db import models

from .app_settings import get_config


@cache
def _fernet(key_material: str) -> Fernet:
    digest = hashlib.sha256(b"verification-at-rest:" + key_material.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def _current() -> Fernet:
    return _fernet(get_config()["ENCRYPTION_KEY"] or settings.SECRET_KEY)


def encrypt(value: str) -> str:
    return _current().encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    """Decrypt a value written by :func:`encrypt`; an unreadable token gives ''."""
    try:
        return _current().decrypt(token.encode()).decode()
    except InvalidToken:
        return ""


class EncryptedTextField(models.TextField):
    """A text column stored Fernet-encrypted; Python code only ever sees plaintext."""

    def from_db_value(self, value, expression, connection):  # type: ignore[no-untyped-def]
        if not value:
            return ""
        return decrypt(value)

    def get_prep_value(self, value):  # type: ignore[no-untyped-def]
        value = super().get_prep_value(value)
        if not value:
            return ""
        return encrypt(value)
