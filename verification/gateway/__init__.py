"""Transport to Telegram: an abstract gateway, the Telethon implementation and an in-memory fake."""

from __future__ import annotations

from django.utils.module_loading import import_string

from ..app_settings import get_config
from .base import (
    GatewayError,
    LoginResult,
    PasswordNeeded,
    SentCode,
    TelegramGateway,
)

__all__ = [
    "GatewayError",
    "LoginResult",
    "PasswordNeeded",
    "SentCode",
    "TelegramGateway",
    "gateway_from_settings",
]


def gateway_from_settings(**kwargs: object) -> TelegramGateway:
    """A new gateway of the class named by the ``GATEWAY`` setting."""
    return import_string(get_config()["GATEWAY"])(**kwargs)
