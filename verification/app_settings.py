"""The app's configuration: one ``VERIFICATION`` dict merged over documented defaults.

Read it with :func:`get_config`; the merged dict is cached and rebuilt whenever the
``VERIFICATION`` setting changes (``override_settings`` included).
"""

from __future__ import annotations

from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

DEFAULTS: dict[str, Any] = {
    # Telegram application credentials (my.telegram.org). The sandbox accepts any values.
    "TELEGRAM_API_ID": 0,
    "TELEGRAM_API_HASH": "",
    # "host:port" of the MTProto server new sender sessions connect to: the sandbox or one of
    # Telegram's test DCs. Empty means Telegram's production servers.
    "TELEGRAM_SERVER": "",
    # Path to that server's RSA public key (PEM). Needed whenever TELEGRAM_SERVER is set.
    "TELEGRAM_SERVER_PUBLIC_KEY": "",
    # DC id sent with TELEGRAM_SERVER (test DCs: 1-3; the sandbox answers to any).
    "TELEGRAM_SERVER_DC_ID": 2,
    # Run the local Telegram sandbox inside the web process and connect a sandbox sender account
    # automatically. For development only.
    "EMBEDDED_SANDBOX": False,
    # Where the embedded sandbox keeps its RSA key and auth keys between restarts ("" = memory).
    "SANDBOX_STATE_FILE": "",
    # Resend timeout and code lifetime of the embedded sandbox, in seconds.
    "SANDBOX_RESEND_TIMEOUT": 60,
    "SANDBOX_CODE_LIFETIME": 600,
    # Run the Telegram worker inside the web process (needs no extra command). Turn off when
    # `manage.py telegram_worker` processes run beside a shared channel layer such as Redis.
    "EMBEDDED_WORKER": True,
    # Dotted path of the gateway class the worker talks to Telegram through.
    "GATEWAY": "verification.gateway.telethon_gateway.TelethonGateway",
    # Channel-layer alias used by the app.
    "CHANNEL_LAYER": "default",
    # Wrong codes allowed per verification before it fails with TOO_MANY_ATTEMPTS.
    "MAX_ATTEMPTS": 5,
    # Seconds a verification stays usable, counted from the visitor's send_code.
    "EXPIRES_AFTER": 600,
    # Resend wait when Telegram names a next delivery type but no timeout.
    "DEFAULT_RESEND_TIMEOUT": 60,
    # Resend limit per verification (auth.resendCode calls).
    "MAX_RESENDS": 5,
    # Seconds a Telegram request may take before the visitor is told Telegram is unavailable.
    "REQUEST_TIMEOUT": 30,
    # Seconds a worker holds a sender account's lease before it must renew it.
    "LEASE_SECONDS": 30,
    # Require a signed-in user to start a verification.
    "REQUIRE_LOGIN": False,
    # Sends allowed per window, as (count, seconds), per scope: "session", "phone", "ip" (IPv6
    # per /64) and "user". None disables one limit; RATE_LIMITS = None disables them all.
    "RATE_LIMITS": {
        "session": (10, 600),
        "phone": (5, 3600),
        "ip": (30, 3600),
    },
    # Accept Telegram's test range +99966XYYYY. None: only when the sandbox or TELEGRAM_SERVER
    # (a test DC) is in use.
    "ALLOW_TEST_NUMBERS": None,
    # Region assumed for numbers typed without a country code ("" = require "+country").
    "DEFAULT_REGION": "",
    # Region codes (ISO 3166-1 alpha-2) a number must belong to; empty allows every region.
    "ALLOWED_REGIONS": [],
    # Region codes refused.
    "DENIED_REGIONS": [],
    # Key used to encrypt phone_code_hash and sender sessions at rest. Empty derives one from
    # SECRET_KEY. Rotating it makes stored sessions unreadable.
    "ENCRYPTION_KEY": "",
    # Key material for the same, newest first: the first key encrypts, every key decrypts. After
    # adding a key in front, run `manage.py verification_rotate_keys`, then drop the old one.
    # When non-empty it replaces ENCRYPTION_KEY.
    "ENCRYPTION_KEYS": [],
}

RATE_LIMIT_SCOPES = ("session", "phone", "ip", "user")

REQUIRED_TYPES: dict[str, type | tuple[type, ...]] = {
    "TELEGRAM_API_ID": int,
    "TELEGRAM_API_HASH": str,
    "TELEGRAM_SERVER": str,
    "TELEGRAM_SERVER_PUBLIC_KEY": str,
    "TELEGRAM_SERVER_DC_ID": int,
    "EMBEDDED_SANDBOX": bool,
    "SANDBOX_STATE_FILE": str,
    "SANDBOX_RESEND_TIMEOUT": (int, float),
    "SANDBOX_CODE_LIFETIME": (int, float),
    "EMBEDDED_WORKER": bool,
    "GATEWAY": str,
    "CHANNEL_LAYER": str,
    "MAX_ATTEMPTS": int,
    "EXPIRES_AFTER": int,
    "DEFAULT_RESEND_TIMEOUT": int,
    "MAX_RESENDS": int,
    "REQUEST_TIMEOUT": (int, float),
    "LEASE_SECONDS": int,
    "REQUIRE_LOGIN": bool,
    "RATE_LIMITS": dict,
    "DEFAULT_REGION": str,
    "ALLOW_TEST_NUMBERS": (bool, type(None)),
    "ALLOWED_REGIONS": (list, tuple),
    "DENIED_REGIONS": (list, tuple),
    "ENCRYPTION_KEY": str,
    "ENCRYPTION_KEYS": (list, tuple),
}


@cache
def get_config() -> dict[str, Any]:
    """The ``VERIFICATION`` setting merged over :data:`DEFAULTS`."""
    user = getattr(settings, "VERIFICATION", {}) or {}
    config = {**DEFAULTS, **user}
    if "RATE_LIMITS" in user and user["RATE_LIMITS"] is None:
        # RATE_LIMITS = None switches every limit off.
        config["RATE_LIMITS"] = dict.fromkeys(RATE_LIMIT_SCOPES)
    elif isinstance(user.get("RATE_LIMITS"), dict):
        config["RATE_LIMITS"] = {**DEFAULTS["RATE_LIMITS"], **user["RATE_LIMITS"]}
    return config


def unknown_keys() -> list[str]:
    user = getattr(settings, "VERIFICATION", {}) or {}
    return sorted(key for key in user if key not in DEFAULTS)


@receiver(setting_changed)
def _reset_config(*, setting: str, **kwargs: Any) -> None:
    if setting in {"VERIFICATION", "SECRET_KEY"}:
        get_config.cache_clear()
