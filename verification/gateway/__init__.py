"""Transport to Telegram: an abstract gateway, the Telethon implementation and an in-memory fake."""

from __future__ import annotations

from typing import Any

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
    "gateway_options",
]


def settings_derived_options(config: dict[str, Any]) -> dict[str, Any]:
    """The options a gateway may take, as the app's own settings give them."""
    return {
        "server": config["TELEGRAM_SERVER"],
        "public_key_file": config["TELEGRAM_SERVER_PUBLIC_KEY"],
        "api_id": config["TELEGRAM_API_ID"],
        "api_hash": config["TELEGRAM_API_HASH"],
        "dc_id": config["TELEGRAM_SERVER_DC_ID"],
        "request_timeout": config["REQUEST_TIMEOUT"],
    }


def gateway_options(gateway_class: type[TelegramGateway], **overrides: Any) -> dict[str, Any]:
    """The keyword arguments ``gateway_class`` is built with: ``GATEWAY_OPTIONS`` over the
    options it takes from the app's settings (its ``settings_options``). ``overrides`` replace
    settings-derived options (the embedded sandbox's address); a class that does not take one
    is not given it."""
    config = get_config()
    derived = settings_derived_options(config)
    takes = gateway_class.settings_options
    return {
        **{name: derived[name] for name in takes},
        **config["GATEWAY_OPTIONS"],
        **{name: value for name, value in overrides.items() if name in takes},
    }


def gateway_from_settings(**overrides: Any) -> TelegramGateway:
    """A new gateway of the ``GATEWAY`` class, built with :func:`gateway_options`."""
    gateway_class = import_string(get_config()["GATEWAY"])
    return gateway_class(**gateway_options(gateway_class, **overrides))
