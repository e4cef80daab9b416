"""System checks: misconfiguration reported in plain words by ``manage.py check``.

One function per rule; its docstring states the rule. Rules that read the merged configuration
run only once ``VERIFICATION`` is a dict whose values have the right types (E001-E003), so each
mistake is reported once, by the rule it breaks.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.db import DatabaseError
from django.utils.module_loading import import_string
from phonenumbers import SUPPORTED_REGIONS

from .addresses import trusted_proxies_invalid
from .app_settings import BY_NAME, RATE_LIMIT_SCOPES, SETTINGS, get_config, unknown_keys
from .challenges import Challenge
from .gateway import gateway_options
from .gateway.base import TelegramGateway
from .models import PhoneVerification
from .passport import bot_id_from_token, private_key_load, private_key_setting_text

Messages = list[CheckMessage]

NO_TELEGRAM = "No Telegram credentials and no sandbox: codes cannot be sent."
NO_TELEGRAM_HINT = (
    "Set TELEGRAM_API_ID and TELEGRAM_API_HASH (from my.telegram.org), or point "
    "TELEGRAM_SERVER at a sandbox, or turn EMBEDDED_SANDBOX on for development."
)


def _type_error(name: str, value: Any) -> str:
    """Why ``value`` does not fit setting ``name``, or ""."""
    expected = BY_NAME[name].type
    types = expected if isinstance(expected, tuple) else (expected,)
    if isinstance(value, types) and not (isinstance(value, bool) and bool not in types):
        return ""
    names = " or ".join(t.__name__ for t in types)
    return f"VERIFICATION[{name!r}] must be {names}, not {type(value).__name__}."


def _config() -> dict[str, Any] | None:
    """The merged configuration, or None while E001 or E003 stand."""
    if not isinstance(getattr(settings, "VERIFICATION", {}), dict):
        return None
    config = get_config()
    if any(_type_error(setting.name, config[setting.name]) for setting in SETTINGS):
        return None
    return config


# The VERIFICATION dict ---------------------------------------------------------------------------


@register()
def check_settings_is_a_dict(app_configs: Any = None, **kwargs: Any) -> Messages:
    """VERIFICATION is a dict."""
    if isinstance(getattr(settings, "VERIFICATION", {}), dict):
        return []
    return [
        Error(
            "The VERIFICATION setting must be a dict.",
            hint="Set VERIFICATION = {...} with the keys listed in the README.",
            id="verification.E001",
        )
    ]


@register()
def check_known_keys(app_configs: Any = None, **kwargs: Any) -> Messages:
    """Every key of VERIFICATION is a setting of the app."""
    if not isinstance(getattr(settings, "VERIFICATION", {}), dict):
        return []
    return [
        Error(
            f"VERIFICATION has an unknown key {key!r}.",
            hint="Known keys: " + ", ".join(sorted(BY_NAME)) + ".",
            id="verification.E002",
        )
        for key in unknown_keys()
    ]


@register()
def check_types(app_configs: Any = None, **kwargs: Any) -> Messages:
    """Every setting has the type the settings table gives it."""
    if not isinstance(getattr(settings, "VERIFICATION", {}), dict):
        return []
    config = get_config()
    errors = (_type_error(setting.name, config[setting.name]) for setting in SETTINGS)
    return [Error(text, id="verification.E003") for text in errors if text]


@register()
def check_number_signs(app_configs: Any = None, **kwargs: Any) -> Messages:
    """Counts and durations are positive, or at least not negative, as the table says."""
    if (config := _config()) is None:
        return []
    messages: Messages = []
    for setting in SETTINGS:
        value = config[setting.name]
        if setting.sign == "positive" and value <= 0:
            text = f"VERIFICATION[{setting.name!r}] must be greater than 0."
        elif setting.sign == "non-negative" and value < 0:
            text = f"VERIFICATION[{setting.name!r}] must not be negative."
        else:
            continue
        messages.append(Error(text, id="verification.E004"))
    return messages


@register()
def check_rate_limit_scopes(app_configs: Any = None, **kwargs: Any) -> Messages:
    """RATE_LIMITS names only known scopes."""
    if (config := _config()) is None:
        return []
    return [
        Error(
            f"VERIFICATION['RATE_LIMITS'] has an unknown scope {scope!r}.",
            hint="Scopes: " + ", ".join(RATE_LIMIT_SCOPES) + ".",
            id="verification.E006",
        )
        for scope in config["RATE_LIMITS"]
        if scope not in RATE_LIMIT_SCOPES
    ]


def _is_limit(limit: Any) -> bool:
    return (
        isinstance(limit, (list, tuple))
        and len(limit) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) and n > 0 for n in limit)
    )


@register()
def check_rate_limit_values(app_configs: Any = None, **kwargs: Any) -> Messages:
    """Each rate limit is (count, seconds) of positive integers, or None."""
    if (config := _config()) is None:
        return []
    return [
        Error(
            f"VERIFICATION['RATE_LIMITS'][{scope!r}] must be (count, seconds) or None.",
            id="verification.E005",
        )
        for scope, limit in config["RATE_LIMITS"].items()
        if limit is not None and not _is_limit(limit)
    ]


@register()
def check_gateway_class(app_configs: Any = None, **kwargs: Any) -> Messages:
    """GATEWAY names an importable TelegramGateway subclass."""
    if (config := _config()) is None:
        return []
    try:
        gateway = import_string(config["GATEWAY"])
    except ImportError as exc:
        return [
            Error(
                f"VERIFICATION['GATEWAY'] {config['GATEWAY']!r} cannot be imported: {exc}",
                hint="Use verification.gateway.telethon_gateway.TelethonGateway (the default).",
                id="verification.E007",
            )
        ]
    if isinstance(gateway, type) and issubclass(gateway, TelegramGateway):
        return []
    return [
        Error(
            f"VERIFICATION['GATEWAY'] {config['GATEWAY']!r} is not a TelegramGateway subclass.",
            id="verification.E007",
        )
    ]


@register()
def check_gateway_options(app_configs: Any = None, **kwargs: Any) -> Messages:
    """GATEWAY_OPTIONS are keyword arguments the GATEWAY class's constructor takes."""
    if (config := _config()) is None:
        return []
    try:
        gateway = import_string(config["GATEWAY"])
    except ImportError:
        return []  # E007
    if not (isinstance(gateway, type) and issubclass(gateway, TelegramGateway)):
        return []  # E007
    try:
        inspect.signature(gateway).bind(**gateway_options(gateway))
    except TypeError as exc:
        return [
            Error(
                f"VERIFICATION['GATEWAY_OPTIONS'] do not fit {config['GATEWAY']}: {exc}.",
                hint="See the GATEWAY_OPTIONS setting in the README for each gateway's options.",
                id="verification.E009",
            )
        ]
    return []


@register()
def check_region_codes(app_configs: Any = None, **kwargs: Any) -> Messages:
    """DEFAULT_REGION, ALLOWED_REGIONS and DENIED_REGIONS hold ISO 3166-1 alpha-2 codes."""
    if (config := _config()) is None:
        return []
    regions = [config["DEFAULT_REGION"]] if config["DEFAULT_REGION"] else []
    return [
        Error(
            f"{region!r} is not a region code (ISO 3166-1 alpha-2, like 'GB').",
            hint="Used in DEFAULT_REGION, ALLOWED_REGIONS and DENIED_REGIONS.",
            id="verification.E008",
        )
        for region in [*regions, *config["ALLOWED_REGIONS"], *config["DENIED_REGIONS"]]
        if not isinstance(region, str) or region.upper() not in SUPPORTED_REGIONS
    ]


# Processes: channel layer and cache --------------------------------------------------------------


@register()
def check_channel_layer_exists(app_configs: Any = None, **kwargs: Any) -> Messages:
    """CHANNEL_LAYER names a configured channel layer."""
    if (config := _config()) is None:
        return []
    if config["CHANNEL_LAYER"] in getattr(settings, "CHANNEL_LAYERS", {}):
        return []
    return [
        Error(
            f"No channel layer named {config['CHANNEL_LAYER']!r} is configured.",
            hint="Phone verification talks to its Telegram worker through a channel layer: "
            "set CHANNEL_LAYERS (InMemoryChannelLayer for one process, Redis for several).",
            id="verification.E010",
        )
    ]


@register()
def check_separate_workers_share_the_channel_layer(
    app_configs: Any = None, **kwargs: Any
) -> Messages:
    """Telegram workers in their own processes need a channel layer shared between processes."""
    if (config := _config()) is None or config["EMBEDDED_WORKER"]:
        return []
    layer = getattr(settings, "CHANNEL_LAYERS", {}).get(config["CHANNEL_LAYER"], {})
    if "InMemoryChannelLayer" not in layer.get("BACKEND", ""):
        return []
    return [
        Error(
            "EMBEDDED_WORKER is off but the channel layer is in-memory, so no separate "
            "Telegram worker process can receive requests.",
            hint="Use a shared channel layer (Redis) or turn EMBEDDED_WORKER on.",
            id="verification.E011",
        )
    ]


@register()
def check_limits_cache_outlives_the_process(app_configs: Any = None, **kwargs: Any) -> Messages:
    """LocMemCache is an error with separate workers and a warning with DEBUG off."""
    cache = getattr(settings, "CACHES", {}).get("default", {})
    if (config := _config()) is None or "LocMemCache" not in cache.get("BACKEND", ""):
        return []
    if not config["EMBEDDED_WORKER"]:
        return [
            Error(
                "EMBEDDED_WORKER is off but the default cache is LocMemCache: rate limits and "
                "the resend lock are kept per process, so each web and worker process counts "
                "alone and the limits multiply.",
                hint="Use a cache shared by every process, such as "
                "django.core.cache.backends.redis.RedisCache.",
                id="verification.E012",
            )
        ]
    # In development a restart that forgets the counts is harmless.
    if settings.DEBUG or not any(config["RATE_LIMITS"].values()):
        return []
    return [
        Warning(
            "The default cache is LocMemCache: the rate limits are forgotten on every restart, "
            "and entries past its MAX_ENTRIES are evicted, counts included.",
            hint="Use a cache that outlives the process: Redis, or "
            "django.core.cache.backends.db.DatabaseCache (manage.py createcachetable).",
            id="verification.W012",
        )
    ]


@register()
def check_transports(app_configs: Any = None, **kwargs: Any) -> Messages:
    """TRANSPORTS names "sender" and/or "gateway", each once."""
    if (config := _config()) is None:
        return []
    transports = list(config["TRANSPORTS"])
    known = list(PhoneVerification.Transport.values)
    wrong = [name for name in transports if name not in known]
    if transports and not wrong and len(set(transports)) == len(transports):
        return []
    return [
        Error(
            f"VERIFICATION['TRANSPORTS'] is {transports!r}: it must list "
            + " and/or ".join(repr(name) for name in known)
            + ", each once, in order of preference.",
            hint='For example ["gateway", "sender"]: the Gateway API first, sender accounts next.',
            id="verification.E014",
        )
    ]


# Abuse -------------------------------------------------------------------------------------------


@register()
def check_trusted_proxies(app_configs: Any = None, **kwargs: Any) -> Messages:
    """TRUSTED_PROXIES is a count that is not negative, or a list of addresses and networks."""
    if (config := _config()) is None:
        return []
    trusted = config["TRUSTED_PROXIES"]
    invalid: Sequence[object]
    if isinstance(trusted, int):
        invalid = [trusted] if trusted < 0 else []
    else:
        invalid = trusted_proxies_invalid(trusted)
    return [
        Error(
            f"VERIFICATION['TRUSTED_PROXIES'] has {entry!r}, which is neither a count of "
            "proxies nor an IP address or network.",
            hint="Give how many proxies are in front of the site (2), or their addresses "
            '(["10.0.0.0/8", "2001:db8::1"]).',
            id="verification.E013",
        )
        for entry in invalid
    ]


def _is_threshold(value: Any) -> bool:
    return (
        isinstance(value, (list, tuple))
        and len(value) == 2
        and all(isinstance(n, int) and not isinstance(n, bool) for n in value)
        and value[0] >= 0
        and value[1] > 0
    )


@register()
def check_challenge_after_and_new_sessions_limit(
    app_configs: Any = None, **kwargs: Any
) -> Messages:
    """CHALLENGE_AFTER and NEW_SESSIONS_LIMIT are (count, seconds) or None: integers, the count
    not negative (0 challenges every send) and the span positive; NEW_SESSIONS_LIMIT's count is
    positive (0 would refuse every visitor)."""
    if (config := _config()) is None:
        return []
    messages: Messages = []
    for name in ("CHALLENGE_AFTER", "NEW_SESSIONS_LIMIT"):
        value = config[name]
        if value is None:
            continue
        if _is_threshold(value) and not (name == "NEW_SESSIONS_LIMIT" and value[0] == 0):
            continue
        messages.append(
            Error(
                f"VERIFICATION[{name!r}] must be (count, seconds) or None, not {value!r}.",
                hint="For example (3, 3600): three in any hour.",
                id="verification.E015",
            )
        )
    return messages


@register()
def check_challenge_class(app_configs: Any = None, **kwargs: Any) -> Messages:
    """CHALLENGE names an importable Challenge subclass that takes CHALLENGE_OPTIONS."""
    if (config := _config()) is None:
        return []
    try:
        challenge = import_string(config["CHALLENGE"])
    except ImportError as exc:
        problem = f"cannot be imported: {exc}"
    else:
        if not (isinstance(challenge, type) and issubclass(challenge, Challenge)):
            problem = "is not a verification.challenges.Challenge subclass"
        else:
            try:
                inspect.signature(challenge).bind(**config["CHALLENGE_OPTIONS"])
                return []
            except TypeError as exc:
                problem = f"does not take CHALLENGE_OPTIONS: {exc}"
    return [
        Error(
            f"VERIFICATION['CHALLENGE'] {config['CHALLENGE']!r} {problem}.",
            hint="Use verification.challenges.HashcashChallenge (the default) or a subclass of "
            "verification.challenges.Challenge.",
            id="verification.E016",
        )
    ]


@register(deploy=True)
def check_regions_restricted(app_configs: Any = None, **kwargs: Any) -> Messages:
    """A deployed site says which countries' numbers it verifies (toll fraud targets numbers in
    countries where texts and calls are expensive)."""
    if (config := _config()) is None or config["ALLOWED_REGIONS"] or config["DENIED_REGIONS"]:
        return []
    return [
        Warning(
            "VERIFICATION sets neither ALLOWED_REGIONS nor DENIED_REGIONS: codes go to numbers "
            "in every country, which invites SMS pumping (toll fraud).",
            hint="List the countries your visitors are in, as ALLOWED_REGIONS = ['GB', 'DE'], or "
            "at least deny the ones you never serve (docs/security.md).",
            id="verification.W060",
        )
    ]


# Telegram ----------------------------------------------------------------------------------------


def _can_send_codes(config: dict[str, Any]) -> bool:
    has_credentials = bool(config["TELEGRAM_API_ID"] and config["TELEGRAM_API_HASH"])
    has_gateway = "gateway" in config["TRANSPORTS"] and bool(
        config["TELEGRAM_GATEWAY_TOKEN"] or config["EMBEDDED_GATEWAY_SANDBOX"]
    )
    return bool(
        config["EMBEDDED_SANDBOX"] or config["TELEGRAM_SERVER"] or has_credentials or has_gateway
    )


@register()
def check_telegram_configured(app_configs: Any = None, **kwargs: Any) -> Messages:
    """Codes need Telegram credentials, a TELEGRAM_SERVER or the embedded sandbox (a warning:
    a host's CI runs ``check`` and ``migrate`` without its secrets; E020 under ``--deploy``)."""
    if (config := _config()) is None or _can_send_codes(config):
        return []
    return [Warning(NO_TELEGRAM, hint=NO_TELEGRAM_HINT, id="verification.W020")]


@register(deploy=True)
def check_telegram_configured_for_deployment(app_configs: Any = None, **kwargs: Any) -> Messages:
    """A deployed site can send codes: Telegram credentials, a TELEGRAM_SERVER or the sandbox."""
    if (config := _config()) is None or _can_send_codes(config):
        return []
    return [Error(NO_TELEGRAM, hint=NO_TELEGRAM_HINT, id="verification.E020")]


@register()
def check_telegram_server_address(app_configs: Any = None, **kwargs: Any) -> Messages:
    """TELEGRAM_SERVER, when set, is host:port."""
    if (config := _config()) is None or not config["TELEGRAM_SERVER"]:
        return []
    host, _, port = config["TELEGRAM_SERVER"].rpartition(":")
    if host and port.isdigit() and 0 < int(port) < 65536:
        return []
    return [
        Error(
            f"TELEGRAM_SERVER {config['TELEGRAM_SERVER']!r} is not host:port.",
            id="verification.E021",
        )
    ]


@register()
def check_telegram_server_public_key(app_configs: Any = None, **kwargs: Any) -> Messages:
    """TELEGRAM_SERVER, when set, comes with TELEGRAM_SERVER_PUBLIC_KEY: a PEM file."""
    if (config := _config()) is None or not config["TELEGRAM_SERVER"]:
        return []
    key = config["TELEGRAM_SERVER_PUBLIC_KEY"]
    if not key:
        return [
            Error(
                "TELEGRAM_SERVER is set but TELEGRAM_SERVER_PUBLIC_KEY is not.",
                hint="Give the path of the server's RSA public key (PEM); "
                "`manage.py telegram_sandbox` writes one.",
                id="verification.E022",
            )
        ]
    path = Path(key)
    if not path.exists():
        return [
            Error(f"TELEGRAM_SERVER_PUBLIC_KEY {key!r} does not exist.", id="verification.E023")
        ]
    if not path.is_file():
        return [Error(f"TELEGRAM_SERVER_PUBLIC_KEY {key!r} is not a file.", id="verification.E023")]
    if "-----BEGIN" not in path.read_text(errors="replace"):
        return [
            Error(
                f"TELEGRAM_SERVER_PUBLIC_KEY {key!r} is not a PEM public key.",
                id="verification.E024",
            )
        ]
    return []


@register()
def check_embedded_sandbox_in_production(app_configs: Any = None, **kwargs: Any) -> Messages:
    """The embedded sandbox is for development: it is not on with DEBUG off."""
    if (config := _config()) is None or not config["EMBEDDED_SANDBOX"] or settings.DEBUG:
        return []
    return [
        Warning(
            "The embedded Telegram sandbox is on with DEBUG off: visitors cannot receive "
            "real codes.",
            hint="Configure Telegram credentials for production.",
            id="verification.W030",
        )
    ]


@register()
def check_embedded_gateway_sandbox_has_a_worker(app_configs: Any = None, **kwargs: Any) -> Messages:
    """The embedded Gateway sandbox starts with the embedded worker, so it needs EMBEDDED_WORKER
    on."""
    if (config := _config()) is None or not config["EMBEDDED_GATEWAY_SANDBOX"]:
        return []
    if config["EMBEDDED_WORKER"]:
        return []
    return [
        Warning(
            "EMBEDDED_GATEWAY_SANDBOX is on but EMBEDDED_WORKER is off: the Gateway sandbox "
            "only starts with the embedded worker, so Gateway messages cannot be sent.",
            hint="Run a standalone sandbox (manage.py telegram_sandbox --gateway-port N) and set "
            "TELEGRAM_GATEWAY_URL and TELEGRAM_GATEWAY_TOKEN, or turn EMBEDDED_WORKER on.",
            id="verification.W032",
        )
    ]


@register()
def check_embedded_sandbox_has_a_worker(app_configs: Any = None, **kwargs: Any) -> Messages:
    """The embedded sandbox starts with the embedded worker, so it needs EMBEDDED_WORKER on."""
    if (config := _config()) is None or not config["EMBEDDED_SANDBOX"]:
        return []
    if config["EMBEDDED_WORKER"]:
        return []
    return [
        Warning(
            "EMBEDDED_SANDBOX is on but EMBEDDED_WORKER is off: the sandbox only starts with "
            "the embedded worker, so no codes can be sent.",
            hint="Run a standalone sandbox (manage.py telegram_sandbox) and set "
            "TELEGRAM_SERVER, or turn EMBEDDED_WORKER on.",
            id="verification.W031",
        )
    ]


# Encryption keys ---------------------------------------------------------------------------------


def _usable_keys(config: dict[str, Any]) -> list[str]:
    return [key for key in config["ENCRYPTION_KEYS"] if isinstance(key, str) and key]


@register()
def check_one_kind_of_encryption_key(app_configs: Any = None, **kwargs: Any) -> Messages:
    """ENCRYPTION_KEYS replaces ENCRYPTION_KEY, so only one of them is set."""
    if (config := _config()) is None or not (_usable_keys(config) and config["ENCRYPTION_KEY"]):
        return []
    return [
        Warning(
            "VERIFICATION sets both ENCRYPTION_KEY and ENCRYPTION_KEYS: ENCRYPTION_KEY is ignored.",
            hint="Move its value into ENCRYPTION_KEYS (after the newest key) and remove "
            "ENCRYPTION_KEY.",
            id="verification.W040",
        )
    ]


@register()
def check_encryption_keys_are_strings(app_configs: Any = None, **kwargs: Any) -> Messages:
    """Every entry of ENCRYPTION_KEYS is a non-empty string."""
    if (config := _config()) is None:
        return []
    if len(_usable_keys(config)) == len(config["ENCRYPTION_KEYS"]):
        return []
    return [
        Warning(
            "VERIFICATION['ENCRYPTION_KEYS'] has an empty entry (or one that is not a "
            "string); it is ignored.",
            hint="Every key must be a non-empty string.",
            id="verification.W040",
        )
    ]


@register()
def check_encryption_keys_are_distinct(app_configs: Any = None, **kwargs: Any) -> Messages:
    """ENCRYPTION_KEYS lists each key once."""
    if (config := _config()) is None:
        return []
    usable = _usable_keys(config)
    if len(set(usable)) == len(usable):
        return []
    return [
        Warning(
            "VERIFICATION['ENCRYPTION_KEYS'] lists the same key more than once.",
            hint="List each key once, newest first.",
            id="verification.W040",
        )
    ]


# Telegram Passport -------------------------------------------------------------------------------

PASSPORT_KEY_HINT = (
    "Run `manage.py passport_keys`, keep the private key it writes, and give the public key it "
    "prints to @BotFather with /setpublickey."
)


@register()
def check_passport_bot_token(app_configs: Any = None, **kwargs: Any) -> Messages:
    """PASSPORT_BOT_TOKEN, when set, is a bot token: ``<bot id>:<secret>``."""
    if (config := _config()) is None or not config["PASSPORT_BOT_TOKEN"]:
        return []
    try:
        bot_id_from_token(config["PASSPORT_BOT_TOKEN"])
    except ValueError:
        return [
            Error(
                "PASSPORT_BOT_TOKEN is not a bot token.",
                hint="Copy the token @BotFather gave the bot; it looks like 123456789:AAE...",
                id="verification.E050",
            )
        ]
    return []


@register()
def check_passport_key_present(app_configs: Any = None, **kwargs: Any) -> Messages:
    """A Passport bot comes with its private key (PASSPORT_PRIVATE_KEY)."""
    if (config := _config()) is None or not config["PASSPORT_BOT_TOKEN"]:
        return []
    if config["PASSPORT_PRIVATE_KEY"]:
        return []
    return [
        Error(
            "PASSPORT_BOT_TOKEN is set but PASSPORT_PRIVATE_KEY is not: shared numbers could "
            "not be decrypted.",
            hint=PASSPORT_KEY_HINT,
            id="verification.E051",
        )
    ]


@register()
def check_passport_key_readable(app_configs: Any = None, **kwargs: Any) -> Messages:
    """PASSPORT_PRIVATE_KEY, when set, is an unencrypted RSA private key of 2048 bits or more
    (PEM text, or a file holding one)."""
    if (config := _config()) is None or not config["PASSPORT_PRIVATE_KEY"]:
        return []
    try:
        key = private_key_load(private_key_setting_text(config["PASSPORT_PRIVATE_KEY"]))
    except OSError as exc:
        problem = f"cannot be read: {exc.strerror or exc}"
    except (ValueError, TypeError):
        problem = "is not an unencrypted RSA private key in PEM"
    else:
        if key.key_size >= 2048:
            return []
        problem = f"has {key.key_size} bits; Telegram asks for 2048 or more"
    return [
        Error(f"PASSPORT_PRIVATE_KEY {problem}.", hint=PASSPORT_KEY_HINT, id="verification.E052")
    ]


@register()
def check_passport_key_has_a_bot(app_configs: Any = None, **kwargs: Any) -> Messages:
    """PASSPORT_PRIVATE_KEY is only used with PASSPORT_BOT_TOKEN."""
    if (config := _config()) is None or config["PASSPORT_BOT_TOKEN"]:
        return []
    if not config["PASSPORT_PRIVATE_KEY"]:
        return []
    return [
        Warning(
            "PASSPORT_PRIVATE_KEY is set but PASSPORT_BOT_TOKEN is not, so Passport is off.",
            hint="Set PASSPORT_BOT_TOKEN to the token of the bot whose public key this is.",
            id="verification.W053",
        )
    ]


@register(Tags.database)
def check_passport_bot_signed_in(app_configs: Any = None, **kwargs: Any) -> Messages:
    """The Passport bot signed in the last time a Telegram worker tried (``check --database``)."""
    if (config := _config()) is None or not config["PASSPORT_BOT_TOKEN"]:
        return []
    if not kwargs.get("databases"):
        return []
    from .selectors import passport_bot_error

    try:
        error = passport_bot_error(token=config["PASSPORT_BOT_TOKEN"])
    except DatabaseError:
        return []  # Not migrated yet.
    if not error:
        return []
    return [
        Warning(
            f"The Passport bot could not sign in: {error}.",
            hint="Check PASSPORT_BOT_TOKEN (@BotFather /token shows it) and TELEGRAM_API_ID.",
            id="verification.W054",
        )
    ]
