"""System checks: misconfiguration reported in plain words by ``manage.py check``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.utils.module_loading import import_string
from phonenumbers import SUPPORTED_REGIONS

from .app_settings import (
    DEFAULTS,
    RATE_LIMIT_SCOPES,
    REQUIRED_TYPES,
    get_config,
    unknown_keys,
)
from .gateway.base import TelegramGateway

NO_TELEGRAM = "No Telegram credentials and no sandbox: codes cannot be sent."
NO_TELEGRAM_HINT = (
    "Set TELEGRAM_API_ID and TELEGRAM_API_HASH (from my.telegram.org), or point "
    "TELEGRAM_SERVER at a sandbox, or turn EMBEDDED_SANDBOX on for development."
)


def _can_send_codes() -> bool:
    config = get_config()
    has_credentials = bool(config["TELEGRAM_API_ID"] and config["TELEGRAM_API_HASH"])
    return bool(config["EMBEDDED_SANDBOX"] or config["TELEGRAM_SERVER"] or has_credentials)


@register()
def check_telegram_configured(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """Codes need Telegram credentials, a TELEGRAM_SERVER or the embedded sandbox. Missing
    secrets are a deployment concern (a host's CI runs ``check`` and ``migrate`` without
    them), so this is a warning; ``check --deploy`` makes it an error (E020)."""
    if not isinstance(getattr(settings, "VERIFICATION", {}), dict) or _can_send_codes():
        return []  # E001 reports a VERIFICATION that is not a dict
    return [Warning(NO_TELEGRAM, hint=NO_TELEGRAM_HINT, id="verification.W020")]


@register(deploy=True)
def check_telegram_configured_for_deployment(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """A deployed site must be able to send codes: it needs Telegram credentials, a
    TELEGRAM_SERVER or the embedded sandbox."""
    if not isinstance(getattr(settings, "VERIFICATION", {}), dict) or _can_send_codes():
        return []  # E001 reports a VERIFICATION that is not a dict
    return [Error(NO_TELEGRAM, hint=NO_TELEGRAM_HINT, id="verification.E020")]


@register()
def check_settings(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    messages: list[Any] = []
    user = getattr(settings, "VERIFICATION", {})
    if not isinstance(user, dict):
        return [
            Error(
                "The VERIFICATION setting must be a dict.",
                hint="Set VERIFICATION = {...} with the keys listed in the README.",
                id="verification.E001",
            )
        ]
    for key in unknown_keys():
        messages.append(
            Error(
                f"VERIFICATION has an unknown key {key!r}.",
                hint="Known keys: " + ", ".join(sorted(DEFAULTS)) + ".",
                id="verification.E002",
            )
        )
    config = get_config()
    for key, expected in REQUIRED_TYPES.items():
        value = config.get(key)
        if not isinstance(value, expected) or (expected is int and isinstance(value, bool)):
            names = (
                " or ".join(t.__name__ for t in expected)
                if isinstance(expected, tuple)
                else expected.__name__
            )
            messages.append(
                Error(
                    f"VERIFICATION[{key!r}] must be {names}, not {type(value).__name__}.",
                    id="verification.E003",
                )
            )
    if messages:
        return messages
    for key in (
        "MAX_ATTEMPTS",
        "EXPIRES_AFTER",
        "LEASE_SECONDS",
        "REQUEST_TIMEOUT",
        "SANDBOX_CODE_LIFETIME",
        "TELEGRAM_SERVER_DC_ID",
    ):
        if config[key] <= 0:
            messages.append(
                Error(f"VERIFICATION[{key!r}] must be greater than 0.", id="verification.E004")
            )
    for key in ("MAX_RESENDS", "DEFAULT_RESEND_TIMEOUT", "SANDBOX_RESEND_TIMEOUT"):
        if config[key] < 0:
            messages.append(
                Error(f"VERIFICATION[{key!r}] must not be negative.", id="verification.E004")
            )
    try:
        gateway = import_string(config["GATEWAY"])
    except ImportError as exc:
        messages.append(
            Error(
                f"VERIFICATION['GATEWAY'] {config['GATEWAY']!r} cannot be imported: {exc}",
                hint="Use verification.gateway.telethon_gateway.TelethonGateway (the default).",
                id="verification.E007",
            )
        )
    else:
        if not (isinstance(gateway, type) and issubclass(gateway, TelegramGateway)):
            messages.append(
                Error(
                    f"VERIFICATION['GATEWAY'] {config['GATEWAY']!r} is not a TelegramGateway "
                    "subclass.",
                    id="verification.E007",
                )
            )
    regions = [config["DEFAULT_REGION"]] if config["DEFAULT_REGION"] else []
    for region in [*regions, *config["ALLOWED_REGIONS"], *config["DENIED_REGIONS"]]:
        if not isinstance(region, str) or region.upper() not in SUPPORTED_REGIONS:
            messages.append(
                Error(
                    f"{region!r} is not a region code (ISO 3166-1 alpha-2, like 'GB').",
                    hint="Used in DEFAULT_REGION, ALLOWED_REGIONS and DENIED_REGIONS.",
                    id="verification.E008",
                )
            )
    for scope in config["RATE_LIMITS"]:
        if scope not in RATE_LIMIT_SCOPES:
            messages.append(
                Error(
                    f"VERIFICATION['RATE_LIMITS'] has an unknown scope {scope!r}.",
                    hint="Scopes: " + ", ".join(RATE_LIMIT_SCOPES) + ".",
                    id="verification.E006",
                )
            )
    for scope, limit in config["RATE_LIMITS"].items():
        if limit is not None and not (
            isinstance(limit, (list, tuple))
            and len(limit) == 2
            and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in limit)
        ):
            messages.append(
                Error(
                    f"VERIFICATION['RATE_LIMITS'][{scope!r}] must be (count, seconds) or None.",
                    id="verification.E005",
                )
            )
    channel_layers = getattr(settings, "CHANNEL_LAYERS", {})
    if config["CHANNEL_LAYER"] not in channel_layers:
        messages.append(
            Error(
                f"No channel layer named {config['CHANNEL_LAYER']!r} is configured.",
                hint="Phone verification talks to its Telegram worker through a channel layer: "
                "set CHANNEL_LAYERS (InMemoryChannelLayer for one process, Redis for several).",
                id="verification.E010",
            )
        )
    elif (
        "InMemoryChannelLayer" in channel_layers[config["CHANNEL_LAYER"]].get("BACKEND", "")
        and not config["EMBEDDED_WORKER"]
    ):
        messages.append(
            Error(
                "EMBEDDED_WORKER is off but the channel layer is in-memory, so no separate "
                "Telegram worker process can receive requests.",
                hint="Use a shared channel layer (Redis) or turn EMBEDDED_WORKER on.",
                id="verification.E011",
            )
        )
    if config["TELEGRAM_SERVER"]:
        host, _, port = config["TELEGRAM_SERVER"].rpartition(":")
        if not host or not port.isdigit() or not 0 < int(port) < 65536:
            messages.append(
                Error(
                    f"TELEGRAM_SERVER {config['TELEGRAM_SERVER']!r} is not host:port.",
                    id="verification.E021",
                )
            )
        key = config["TELEGRAM_SERVER_PUBLIC_KEY"]
        if not key:
            messages.append(
                Error(
                    "TELEGRAM_SERVER is set but TELEGRAM_SERVER_PUBLIC_KEY is not.",
                    hint="Give the path of the server's RSA public key (PEM); "
                    "`manage.py telegram_sandbox` writes one.",
                    id="verification.E022",
                )
            )
        elif not Path(key).exists():
            messages.append(
                Error(
                    f"TELEGRAM_SERVER_PUBLIC_KEY {key!r} does not exist.",
                    id="verification.E023",
                )
            )
        elif not Path(key).is_file():
            messages.append(
                Error(
                    f"TELEGRAM_SERVER_PUBLIC_KEY {key!r} is not a file.",
                    id="verification.E023",
                )
            )
        elif "-----BEGIN" not in Path(key).read_text(errors="replace"):
            messages.append(
                Error(
                    f"TELEGRAM_SERVER_PUBLIC_KEY {key!r} is not a PEM public key.",
                    id="verification.E024",
                )
            )
    if config["EMBEDDED_SANDBOX"] and not config["EMBEDDED_WORKER"]:
        messages.append(
            Warning(
                "EMBEDDED_SANDBOX is on but EMBEDDED_WORKER is off: the sandbox only starts with "
                "the embedded worker, so no codes can be sent.",
                hint="Run a standalone sandbox (manage.py telegram_sandbox) and set "
                "TELEGRAM_SERVER, or turn EMBEDDED_WORKER on.",
                id="verification.W031",
            )
        )
    if config["EMBEDDED_SANDBOX"] and not settings.DEBUG:
        messages.append(
            Warning(
                "The embedded Telegram sandbox is on with DEBUG off: visitors cannot receive "
                "real codes.",
                hint="Configure Telegram credentials for production.",
                id="verification.W030",
            )
        )
    return messages


@register()
def check_encryption_keys(app_configs: Any = None, **kwargs: Any) -> list[Any]:
    """ENCRYPTION_KEYS replaces ENCRYPTION_KEY, so set only one of them; ENCRYPTION_KEYS lists
    each key once and none blank."""
    if not isinstance(getattr(settings, "VERIFICATION", {}), dict):
        return []  # E001
    config = get_config()
    keys = config["ENCRYPTION_KEYS"]
    if not isinstance(keys, (list, tuple)):
        return []  # E003
    messages: list[Any] = []
    usable = [key for key in keys if isinstance(key, str) and key]
    if usable and config["ENCRYPTION_KEY"]:
        messages.append(
            Warning(
                "VERIFICATION sets both ENCRYPTION_KEY and ENCRYPTION_KEYS: ENCRYPTION_KEY is "
                "ignored.",
                hint="Move its value into ENCRYPTION_KEYS (after the newest key) and remove "
                "ENCRYPTION_KEY.",
                id="verification.W040",
            )
        )
    if len(usable) != len(keys):
        messages.append(
            Warning(
                "VERIFICATION['ENCRYPTION_KEYS'] has an empty entry (or one that is not a "
                "string); it is ignored.",
                hint="Every key must be a non-empty string.",
                id="verification.W040",
            )
        )
    if len(set(usable)) != len(usable):
        messages.append(
            Warning(
                "VERIFICATION['ENCRYPTION_KEYS'] lists the same key more than once.",
                hint="List each key once, newest first.",
                id="verification.W040",
            )
        )
    return messages
