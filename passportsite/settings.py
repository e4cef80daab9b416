"""Settings for passportsite.

Every value is read from the environment (or a `.env` file next to manage.py) and has an embedded
default, so a fresh checkout runs on SQLite, the in-memory channel layer, the database cache and
the local Telegram sandbox with nothing configured. `.env.example` lists every variable.
"""

from __future__ import annotations

from pathlib import Path

import environ

BASE_DIR = Path(__file__).resolve().parent.parent


def proxy_ssl_header(value: str) -> tuple[str, str] | None:
    """SECURE_PROXY_SSL_HEADER from ``Header-Name`` (meaning ``https``) or ``Header-Name=value``;
    empty for none."""
    name, _, expected = value.partition("=")
    if not name.strip():
        return None
    meta_name = "HTTP_" + name.strip().upper().replace("-", "_")
    return (meta_name, expected.strip() or "https")


env = environ.Env()
# ENV_FILE names another file (the test suite's processes use /dev/null to read none).
environ.Env.read_env(env.str("ENV_FILE", default=str(BASE_DIR / ".env")), overwrite=False)

DEBUG = env.bool("DEBUG", default=True)
SECRET_KEY = env.str(
    "SECRET_KEY", default="django-insecure-passportsite-local-development-key-change-me"
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])

# HTTPS. Each switch is on by default with DEBUG off, so a production site that sets nothing
# is served as `check --deploy` expects; development over plain HTTP keeps them all off.
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 31_536_000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
# Opt-in: only behind a proxy that terminates TLS and always sets (or strips) this header. Trusting
# it otherwise lets any client claim HTTPS.
SECURE_PROXY_SSL_HEADER = proxy_ssl_header(env.str("SECURE_PROXY_SSL_HEADER", default=""))

INSTALLED_APPS = [
    "daphne",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "verification",
    "passportsite",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    # Static files straight after the redirect to HTTPS, before sessions and the rest.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "passportsite.urls"
ASGI_APPLICATION = "passportsite.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # One file shared by the web process and its embedded Telegram worker. WAL lets readers
    # run beside the writer; synchronous=NORMAL is durable across application crashes (WAL
    # only loses the last commits on a power cut). Connections stay open: opening one
    # registers Django's SQL functions each time.
    DATABASES["default"]["CONN_MAX_AGE"] = None
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "timeout": 20,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL",
        }
    )
elif DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Django's psycopg pool: a step borrows an open connection instead of opening one.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": 2,
        "max_size": env.int("DATABASE_POOL_SIZE", default=16),
        "timeout": 10,
    }

REDIS_URL = env.str("REDIS_URL", default="")
# Messages a channel may hold before a send to it fails (the worker's channel takes bursts).
CHANNEL_CAPACITY = env.int("CHANNEL_CAPACITY", default=2000)
if REDIS_URL:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [
                    {
                        "address": REDIS_URL,
                        # channels_redis blocks 5 s on BZPOPMIN; redis-py 8 also times reads
                        # out at 5 s by default, which turns every idle receive into an error.
                        "socket_timeout": 30,
                        # redis-py 8's pool refuses the 101st concurrent command by default
                        # (MaxConnectionsError); a burst of sockets joining groups needs more.
                        "max_connections": env.int("REDIS_MAX_CONNECTIONS", default=2000),
                    }
                ],
                "capacity": CHANNEL_CAPACITY,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
        }
    }
else:
    CHANNEL_LAYERS = {
        "default": {
            # Channels' in-memory layer, without its O(sockets) walk on every message.
            "BACKEND": "verification.layers.InMemoryChannelLayer",
            "CONFIG": {"capacity": CHANNEL_CAPACITY},
        }
    }
    # Rate-limit counters, flood waits and revoked owners live here. The database cache keeps
    # them across restarts (LocMemCache forgot them, letting a restart reset every limit); its
    # table comes with `migrate` (passportsite/migrations). One process serves, and on SQLite the
    # app's single database thread serialises the counters' read-and-write `incr`. The stock
    # 300 entries would evict counts under any real load.
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.db.DatabaseCache",
            "LOCATION": "passportsite_cache",
            "OPTIONS": {"MAX_ENTRIES": 100_000},
        }
    }

# With Redis, sessions are read through its cache (every WebSocket connect reads one); without,
# a cache in the same database would only double the reads.
SESSION_ENGINE = "django.contrib.sessions.backends." + ("cached_db" if REDIS_URL else "db")

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = env.str("LANGUAGE_CODE", default="en")
LOCALE_PATHS = [BASE_DIR / "locale"]
LANGUAGES = [("en", "English"), ("ru", "Русский")]
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
# WhiteNoise serves static files from the web process. With DEBUG on it finds them in the apps and
# `static/`, unhashed, as runserver does. With DEBUG off it serves what `manage.py collectstatic`
# put in STATIC_ROOT: compressed, under hashed names with a year-long cache lifetime. Without
# that step the pages fail (the manifest has no entry for their files).
STATIC_ROOT = env.path("STATIC_ROOT", default=BASE_DIR / "var" / "static")
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"
        if DEBUG
        else "passportsite.storage.StaticStorage"
    },
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

TELEGRAM_SERVER = env.str("TELEGRAM_SERVER", default="")
TELEGRAM_API_ID = env.int("TELEGRAM_API_ID", default=0)
TELEGRAM_GATEWAY_TOKEN = env.str("TELEGRAM_GATEWAY_TOKEN", default="")
TELEGRAM_GATEWAY_URL = env.str("TELEGRAM_GATEWAY_URL", default="")
# No server and no credentials: run the local sandbox inside the web process.
EMBEDDED_SANDBOX = env.bool("EMBEDDED_SANDBOX", default=not TELEGRAM_SERVER and not TELEGRAM_API_ID)
# With the embedded sandbox and no Gateway token, the Gateway API sandbox runs beside it.
EMBEDDED_GATEWAY_SANDBOX = env.bool(
    "EMBEDDED_GATEWAY_SANDBOX", default=EMBEDDED_SANDBOX and not TELEGRAM_GATEWAY_TOKEN
)
# Where this site is reached; the embedded Gateway sandbox posts its delivery reports here.
SITE_URL = env.str("SITE_URL", default="http://127.0.0.1:8000").rstrip("/")


def rate_limits(value: str) -> dict[str, tuple[int, int] | None] | None:
    """VERIFICATION["RATE_LIMITS"] from ``off`` or ``scope=count/seconds,...`` (``scope=off``).

    Scopes left out keep the app's default; the app's system checks judge the scope names.
    """
    if value.strip().lower() == "off":
        return None
    limits: dict[str, tuple[int, int] | None] = {}
    for item in filter(None, (part.strip() for part in value.split(","))):
        scope, _, limit = (text.strip() for text in item.partition("="))
        count, _, seconds = limit.partition("/")
        if limit.lower() == "off":
            limits[scope] = None
        elif scope and count.isdigit() and seconds.isdigit():
            limits[scope] = (int(count), int(seconds))
        else:
            raise environ.ImproperlyConfigured(
                f"VERIFICATION_RATE_LIMITS: {item!r} is not scope=count/seconds or scope=off."
            )
    return limits


def count_per_span(name: str, value: str) -> tuple[int, int] | None:
    """A ``(count, seconds)`` setting from ``count/seconds``, or ``off`` for None."""
    value = value.strip()
    if value.lower() == "off":
        return None
    count, _, seconds = value.partition("/")
    if not (count.strip().isdigit() and seconds.strip().isdigit()):
        raise environ.ImproperlyConfigured(f"{name}: {value!r} is not count/seconds or off.")
    return (int(count), int(seconds))


def trusted_proxies(value: str) -> int | list[str]:
    """VERIFICATION["TRUSTED_PROXIES"] from a count (``1``) or ``address,network/bits,...``."""
    value = value.strip()
    if value.isdigit():
        return int(value)
    return [part.strip() for part in value.split(",") if part.strip()]


RATE_LIMITS = env.str("VERIFICATION_RATE_LIMITS", default="session=10/600,phone=5/3600,ip=30/3600")
VERIFICATION = {
    "TELEGRAM_API_ID": TELEGRAM_API_ID,
    "TELEGRAM_API_HASH": env.str("TELEGRAM_API_HASH", default=""),
    "TELEGRAM_SERVER": TELEGRAM_SERVER,
    "TELEGRAM_SERVER_PUBLIC_KEY": env.str("TELEGRAM_SERVER_PUBLIC_KEY", default=""),
    "EMBEDDED_SANDBOX": EMBEDDED_SANDBOX,
    "TRANSPORTS": env.list("TRANSPORTS", default=["sender", "gateway"]),
    "TELEGRAM_GATEWAY_TOKEN": TELEGRAM_GATEWAY_TOKEN,
    # Unset: Telegram's own address (the app's default).
    **({"TELEGRAM_GATEWAY_URL": TELEGRAM_GATEWAY_URL} if TELEGRAM_GATEWAY_URL else {}),
    "EMBEDDED_GATEWAY_SANDBOX": EMBEDDED_GATEWAY_SANDBOX,
    "TELEGRAM_GATEWAY_CALLBACK_URL": env.str(
        "TELEGRAM_GATEWAY_CALLBACK_URL",
        default=f"{SITE_URL}/gateway/report/" if EMBEDDED_GATEWAY_SANDBOX else "",
    ),
    "TELEGRAM_GATEWAY_SENDER_USERNAME": env.str("TELEGRAM_GATEWAY_SENDER_USERNAME", default=""),
    "SANDBOX_STATE_FILE": env.str(
        "SANDBOX_STATE_FILE", default=str(BASE_DIR / "var" / "sandbox-state.json")
    ),
    "SANDBOX_RESEND_TIMEOUT": env.float("SANDBOX_RESEND_TIMEOUT", default=60),
    "SANDBOX_CODE_LIFETIME": env.float("SANDBOX_CODE_LIFETIME", default=600),
    # With Redis, Telegram workers run as their own processes (manage.py telegram_worker).
    "EMBEDDED_WORKER": env.bool("EMBEDDED_WORKER", default=not REDIS_URL),
    "REQUIRE_LOGIN": env.bool("VERIFICATION_REQUIRE_LOGIN", default=False),
    "LEASE_SECONDS": env.int("VERIFICATION_LEASE_SECONDS", default=30),
    "RATE_LIMITS": rate_limits(RATE_LIMITS),
    "TRUSTED_PROXIES": trusted_proxies(env.str("VERIFICATION_TRUSTED_PROXIES", default="0")),
    "CHALLENGE_AFTER": count_per_span(
        "VERIFICATION_CHALLENGE_AFTER",
        # Switching every send limit off (benchmarks, protocol clients) switches this one off too.
        env.str(
            "VERIFICATION_CHALLENGE_AFTER",
            default="off" if RATE_LIMITS.strip().lower() == "off" else "3/3600",
        ),
    ),
    "CHALLENGE_DIFFICULTY": env.int("VERIFICATION_CHALLENGE_DIFFICULTY", default=18),
    "NEW_SESSIONS_LIMIT": count_per_span(
        "VERIFICATION_NEW_SESSIONS_LIMIT",
        env.str("VERIFICATION_NEW_SESSIONS_LIMIT", default="60/3600"),
    ),
    "MAX_SOCKETS_PER_ADDRESS": env.int("VERIFICATION_MAX_SOCKETS_PER_ADDRESS", default=50),
    "MAX_ATTEMPTS": env.int("VERIFICATION_MAX_ATTEMPTS", default=5),
    "ALLOWED_REGIONS": env.list("VERIFICATION_ALLOWED_REGIONS", default=[]),
    "DENIED_REGIONS": env.list("VERIFICATION_DENIED_REGIONS", default=[]),
    "EXPIRES_AFTER": env.int("VERIFICATION_EXPIRES_AFTER", default=600),
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "verification": {
            "handlers": ["console"],
            "level": env.str("LOG_LEVEL", default="INFO"),
            "propagate": False,
        },
        "telethon": {"handlers": ["console"], "level": "WARNING"},
    },
}
