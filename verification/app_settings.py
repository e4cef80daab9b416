"""The app's configuration: one ``VERIFICATION`` dict merged over documented defaults.

Each setting is described once, in :data:`SETTINGS`; the defaults, the type checks
(``checks.py``) and the README's settings section (:func:`settings_reference`) come from it.
Read the configuration with :func:`get_config`; the merged dict is cached and rebuilt whenever
the ``VERIFICATION`` setting changes (``override_settings`` included).
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from functools import cache
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver


@dataclass(frozen=True)
class Setting:
    """One key of ``VERIFICATION``: its default, the type(s) it accepts and what it does."""

    name: str
    default: Any
    type: type | tuple[type, ...]
    help: str
    #: For numbers: ``"positive"`` (> 0) or ``"non-negative"`` (>= 0), checked by E004.
    sign: str = ""


NUMBER = (int, float)

SETTINGS: tuple[Setting, ...] = (
    Setting("TELEGRAM_API_ID", 0, int, "Your Telegram application's id (my.telegram.org)."),
    Setting("TELEGRAM_API_HASH", "", str, "Your Telegram application's hash."),
    Setting(
        "TELEGRAM_SERVER",
        "",
        str,
        "`host:port` of the MTProto server: a sandbox or a Telegram test DC; empty means "
        "Telegram's production servers.",
    ),
    Setting(
        "TELEGRAM_SERVER_PUBLIC_KEY",
        "",
        str,
        "Path of that server's RSA public key (PEM); needed whenever `TELEGRAM_SERVER` is set.",
    ),
    Setting(
        "TELEGRAM_SERVER_DC_ID",
        2,
        int,
        "DC id sent with `TELEGRAM_SERVER` (test DCs: 1-3; the sandbox answers to any).",
        sign="positive",
    ),
    Setting(
        "EMBEDDED_SANDBOX",
        False,
        bool,
        "Run the sandbox inside the web process and connect a sandbox sender account "
        "automatically (development only).",
    ),
    Setting(
        "EMBEDDED_GATEWAY_SANDBOX",
        False,
        bool,
        "Run the Gateway API sandbox inside the web process (with the embedded worker) and send "
        "Gateway messages to it, with its own token, instead of `TELEGRAM_GATEWAY_URL` "
        "(development only; [docs/gateway.md](docs/gateway.md)).",
    ),
    Setting(
        "SANDBOX_STATE_FILE",
        "",
        str,
        "Where the embedded sandbox keeps its RSA key and auth keys between restarts "
        '(`""` = memory).',
    ),
    Setting(
        "SANDBOX_RESEND_TIMEOUT",
        60,
        NUMBER,
        "Seconds before the embedded sandbox allows a resend.",
        sign="non-negative",
    ),
    Setting(
        "SANDBOX_CODE_LIFETIME",
        600,
        NUMBER,
        "Seconds the embedded sandbox's codes live.",
        sign="positive",
    ),
    Setting(
        "EMBEDDED_WORKER",
        True,
        bool,
        "Run the Telegram worker inside the web process; turn off when `manage.py "
        "telegram_worker` processes run beside a shared (Redis) channel layer and cache.",
    ),
    Setting(
        "GATEWAY",
        "verification.gateway.telethon_gateway.TelethonGateway",
        str,
        "Dotted path of the transport class; `verification.gateway.fake.FakeGateway` is an "
        "in-memory one for tests.",
    ),
    Setting(
        "GATEWAY_OPTIONS",
        {},
        dict,
        "Keyword arguments for the `GATEWAY` class. `TelethonGateway` takes `server`, "
        "`public_key_file`, `api_id`, `api_hash`, `dc_id` and `request_timeout`; each one left "
        "out comes from `TELEGRAM_SERVER`, `TELEGRAM_SERVER_PUBLIC_KEY`, `TELEGRAM_API_ID`, "
        "`TELEGRAM_API_HASH`, `TELEGRAM_SERVER_DC_ID` and `REQUEST_TIMEOUT`. `FakeGateway` takes "
        "`resend_timeout` and `delay`.",
    ),
    Setting(
        "TRANSPORTS",
        ["sender", "gateway"],
        (list, tuple),
        'How codes go out, in order of preference: `"sender"` (the site\'s sender accounts, '
        'MTProto) and `"gateway"` (Telegram\'s Gateway API, used only when '
        "`TELEGRAM_GATEWAY_TOKEN` is set or `EMBEDDED_GATEWAY_SANDBOX` is on). A send the first "
        "cannot do (no free sender account; a number the Gateway cannot reach) falls through to "
        "the next.",
    ),
    Setting(
        "TELEGRAM_GATEWAY_TOKEN",
        "",
        str,
        "API token of your Telegram Gateway account (gateway.telegram.org); empty switches the "
        "Gateway transport off. It also signs the delivery reports.",
    ),
    Setting(
        "TELEGRAM_GATEWAY_URL",
        "https://gatewayapi.telegram.org/",
        str,
        "Base URL of the Gateway API: Telegram's by default, the Gateway sandbox's in development.",
    ),
    Setting(
        "TELEGRAM_GATEWAY_CALLBACK_URL",
        "",
        str,
        "Absolute URL of the app's delivery-report endpoint (`gateway/report/` under the app's "
        "URLs) that the Gateway posts delivery reports to; empty asks for no reports.",
    ),
    Setting(
        "TELEGRAM_GATEWAY_SENDER_USERNAME",
        "",
        str,
        "Username of a Telegram channel you own that the code is sent from; empty uses "
        "Telegram's own Verification Codes chat.",
    ),
    Setting(
        "TELEGRAM_GATEWAY_TTL",
        600,
        int,
        "Seconds a Gateway message stays valid (30-3600); an undelivered message is refunded.",
        sign="positive",
    ),
    Setting(
        "TELEGRAM_GATEWAY_CODE_LENGTH",
        6,
        int,
        "Digits in a code Telegram generates for the Gateway (4-8).",
        sign="positive",
    ),
    Setting(
        "TELEGRAM_GATEWAY_RESEND_TIMEOUT",
        60,
        int,
        "Seconds before a Gateway code can be sent again (each resend is a new, billed message).",
        sign="non-negative",
    ),
    Setting(
        "TELEGRAM_GATEWAY_REPORT_WINDOW",
        300,
        int,
        "Seconds a delivery report's signed timestamp may differ from the server clock; reports "
        "outside it, and a signature seen before, are refused as replays.",
        sign="positive",
    ),
    Setting(
        "TELEGRAM_GATEWAY_LOW_BALANCE",
        10,
        NUMBER,
        "The admin warns while the Gateway account's last reported balance is below this "
        "(in the account's currency; `0` = never).",
        sign="non-negative",
    ),
    Setting("CHANNEL_LAYER", "default", str, "Alias of the channel layer the app uses."),
    Setting(
        "MAX_ATTEMPTS",
        5,
        int,
        "Wrong codes allowed per verification before it fails with `TOO_MANY_ATTEMPTS`.",
        sign="positive",
    ),
    Setting(
        "EXPIRES_AFTER",
        600,
        int,
        "Seconds a verification stays usable, counted from the visitor's `send_code`.",
        sign="positive",
    ),
    Setting(
        "DEFAULT_RESEND_TIMEOUT",
        60,
        int,
        "Resend wait when Telegram names a next delivery type but no timeout.",
        sign="non-negative",
    ),
    Setting(
        "MAX_RESENDS",
        5,
        int,
        "Resends allowed per verification (`auth.resendCode`).",
        sign="non-negative",
    ),
    Setting(
        "REQUEST_TIMEOUT",
        30,
        NUMBER,
        "Seconds a Telegram request may take before the visitor is told Telegram is unavailable.",
        sign="positive",
    ),
    Setting(
        "LEASE_SECONDS",
        30,
        int,
        "Seconds a worker holds a sender account's lease before it must renew it (how long a "
        "crashed worker's accounts wait before another worker takes them over).",
        sign="positive",
    ),
    Setting(
        "REQUIRE_LOGIN",
        False,
        bool,
        "Only signed-in users may verify; the signed-in user is always recorded.",
    ),
    Setting(
        "RATE_LIMITS",
        {
            "session": (10, 600),
            "phone": (5, 3600),
            "ip": (30, 3600),
            "global": (1000, 3600),
            "account": (200, 3600),
        },
        dict,
        'Sends allowed in any span of `seconds`, as `(count, seconds)`, per scope: `"session"`, '
        '`"phone"`, `"ip"` (IPv6 per /64), `"user"` (signed-in), `"global"` (the whole site) and '
        '`"account"` (each sender account; a full one passes sends to the others). Kept in the '
        "default cache, which every process must share. Scopes left out keep their default; "
        "`None` switches one limit off, and `RATE_LIMITS = None` all of them. Refused sends use "
        "up no quota ([docs/security.md](docs/security.md)).",
    ),
    Setting(
        "TRUSTED_PROXIES",
        0,
        (int, list, tuple),
        "The proxies in front of the site, whose `X-Forwarded-For` entries are believed: a "
        "count (each appends one entry; the visitor is that many entries from the right) or a "
        'list of their addresses and networks (`["10.0.0.0/8"]`; the visitor is the right-most '
        "entry not in it). 0 uses the socket's peer address. Do not also run daphne with "
        "`--proxy-headers`, which believes the left-most entry, written by the client.",
    ),
    Setting(
        "FRAME_RATE",
        20,
        NUMBER,
        "Frames a second each socket may send, on average; a socket that sends faster is "
        "closed with 4008 before its frames cost any work.",
        sign="positive",
    ),
    Setting(
        "FRAME_BURST",
        40,
        int,
        "Frames a socket may send at once above `FRAME_RATE`, and the most that wait to be "
        "handled.",
        sign="positive",
    ),
    Setting(
        "MAX_SOCKETS_PER_ADDRESS",
        50,
        int,
        "Sockets one client address (IPv6: one /64) may hold open at once, counted per web "
        "process; the next is refused before its handshake completes (close code 4013). 0 "
        "switches the cap off. Raise it when many visitors share one address (an office, a "
        "carrier's NAT).",
        sign="non-negative",
    ),
    Setting(
        "CHALLENGE_AFTER",
        (3, 3600),
        (list, tuple, type(None)),
        "`(count, seconds)`: once one session, or one client address (IPv6 per /64), has sent "
        "`count` codes in any span of `seconds`, its next `send_code` must first pass the "
        "`CHALLENGE` (a proof-of-work the page solves in a few hundred milliseconds). "
        "A count of 0 asks for it before every send; `None` switches the challenge off "
        "([docs/security.md](docs/security.md#a-challenge-before-sending)).",
    ),
    Setting(
        "CHALLENGE_DIFFICULTY",
        18,
        int,
        "Leading zero bits the built-in hashcash challenge asks for: each bit more doubles the "
        "page's work (18 took desktop Chromium 0.16 s on average, a phone takes several times "
        "that) and not the server's, which checks an answer with one hash.",
        sign="positive",
    ),
    Setting(
        "CHALLENGE",
        "verification.challenges.HashcashChallenge",
        str,
        "Dotted path of the challenge class (a `verification.challenges.Challenge`); the default "
        "needs no third-party service. Plug in a hosted CAPTCHA with a class of your own "
        "([how](docs/security.md#a-hosted-captcha-instead)).",
    ),
    Setting(
        "CHALLENGE_OPTIONS",
        {},
        dict,
        "Keyword arguments for the `CHALLENGE` class. `HashcashChallenge` takes `difficulty` "
        "(default `CHALLENGE_DIFFICULTY`) and `lifetime` (seconds an issued puzzle stays "
        "solvable, default 300).",
    ),
    Setting(
        "NEW_SESSIONS_LIMIT",
        (60, 3600),
        (list, tuple, type(None)),
        "`(count, seconds)`: sessions one client address (IPv6 per /64) may start through the "
        "page's session endpoint in any span of `seconds` (the page starts one when the visitor "
        "first acts; loading it starts none). `None` switches the limit off.",
    ),
    Setting(
        "ALLOW_TEST_NUMBERS",
        None,
        (bool, type(None)),
        "Accept Telegram's test range `+99966XYYYY`; `None` means only when the sandbox or "
        "`TELEGRAM_SERVER` (a test DC) is in use.",
    ),
    Setting(
        "DEFAULT_REGION",
        "",
        str,
        "Region assumed for numbers typed without a country code, and the country the page's "
        'picker starts at (`""`: such numbers are refused, and the picker starts at the country '
        "of the visitor's language).",
    ),
    Setting(
        "ALLOWED_REGIONS",
        [],
        (list, tuple),
        "Region codes (ISO 3166-1 alpha-2) a number must belong to; empty allows every region.",
    ),
    Setting("DENIED_REGIONS", [], (list, tuple), "Region codes refused."),
    Setting(
        "ENCRYPTION_KEY",
        "",
        str,
        "Encrypts `phone_code_hash` and sender sessions at rest; empty derives a key from "
        "`SECRET_KEY`. Changing it makes stored sessions unreadable.",
    ),
    Setting(
        "ENCRYPTION_KEYS",
        [],
        (list, tuple),
        "Key material for the same, newest first: the first key encrypts, every key decrypts. "
        "When set it replaces `ENCRYPTION_KEY`. After putting a new key in front, run "
        "`manage.py verification_rotate_keys`, then remove the old key "
        "([how](docs/embedding.md#rotating-the-encryption-key)).",
    ),
    Setting(
        "PASSPORT_BOT_TOKEN",
        "",
        str,
        "Token of the site's bot (@BotFather) that receives numbers shared with Telegram "
        "Passport; empty switches Passport off (the embedded sandbox brings its own bot) "
        "([set-up](docs/passport.md)).",
    ),
    Setting(
        "PASSPORT_PRIVATE_KEY",
        "",
        str,
        "The bot's RSA private key: PEM text, or the path of a PEM file. `manage.py "
        "passport_keys` makes one and prints the public key for @BotFather's `/setpublickey`.",
    ),
    Setting(
        "PASSPORT_EXPIRES_AFTER",
        600,
        int,
        "Seconds a Passport request (its link and QR code) stays open.",
        sign="positive",
    ),
)

BY_NAME: dict[str, Setting] = {setting.name: setting for setting in SETTINGS}
DEFAULTS: dict[str, Any] = {setting.name: setting.default for setting in SETTINGS}

RATE_LIMIT_SCOPES = ("session", "phone", "ip", "user", "global", "account")


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
    return sorted(key for key in user if key not in BY_NAME)


def _literal(value: Any) -> str:
    return repr(value).replace("'", '"')


def settings_reference() -> str:
    """The README's settings list: one bullet per setting, with its default."""
    return "\n".join(
        textwrap.fill(
            f"- `{setting.name}` (`{_literal(setting.default)}`) — {setting.help}",
            width=100,
            subsequent_indent="  ",
            break_on_hyphens=False,
            break_long_words=False,
        )
        for setting in SETTINGS
    )


@receiver(setting_changed)
def _reset_config(*, setting: str, **kwargs: Any) -> None:
    if setting in {"VERIFICATION", "SECRET_KEY"}:
        get_config.cache_clear()
