"""passportsite as deployed: its embedded defaults and its DEBUG-off settings, in processes of
their own (``passportsite.settings`` with an explicit environment)."""

from __future__ import annotations

import ast
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def site(tmp_path):
    """``site(*args, **env)``: ``manage.py`` on passportsite with the embedded defaults."""

    def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
        environment = {
            "PATH": os.environ["PATH"],
            "DJANGO_SETTINGS_MODULE": "passportsite.settings",
            "ENV_FILE": os.devnull,
            "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite3'}",
            "SANDBOX_STATE_FILE": str(tmp_path / "sandbox.json"),
            **env,
        }
        return subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=environment,
            capture_output=True,
            text=True,
            timeout=120,
        )

    return manage


def test_the_embedded_cache_keeps_the_limits_across_a_restart(site):
    """A restart must not reset every rate limit: the count taken by one process is seen by the
    next, with nothing run but ``migrate``."""
    assert site("migrate", "--no-input", "-v0").returncode == 0
    taken = site(
        "shell",
        "-c",
        "from verification.limits import Limit, limits_take; import time; "
        "print(limits_take(limits=[Limit('ip', '203.0.113.1', 1, 3600)], now=time.time()))",
    )
    assert taken.returncode == 0, taken.stderr
    again = site(
        "shell",
        "-c",
        "from verification.limits import Limit, limits_take; import time\n"
        "try:\n"
        "    limits_take(limits=[Limit('ip', '203.0.113.1', 1, 3600)], now=time.time())\n"
        "except Exception as exc:\n"
        "    print(type(exc).__name__, exc.code)\n",
    )
    assert again.returncode == 0, again.stderr
    assert again.stdout.strip().splitlines()[-1] == "VerificationError RATE_LIMITED"


def documented_production_settings() -> dict[str, str]:
    """The production ``.env`` block of the README's deployment section, as variables."""
    readme = (ROOT / "README.md").read_text()
    block = re.search(
        r"<!-- production env: start -->\n```sh\n(.*?)```\n<!-- production env: end -->",
        readme,
        flags=re.DOTALL,
    )
    assert block, "README.md has no production env block"
    lines = [line for line in block.group(1).splitlines() if line and not line.startswith("#")]
    return dict(line.split("=", 1) for line in lines)


def test_check_deploy_is_clean_on_the_documented_production_settings(site, tmp_path):
    """What the README tells a host to set passes ``check --deploy`` without a single warning
    (``--fail-level WARNING`` turns any into a failing exit)."""
    production = documented_production_settings()
    production["SECRET_KEY"] = secrets.token_urlsafe(50)
    production["STATIC_ROOT"] = str(tmp_path / "static")
    checked = site("check", "--deploy", "--fail-level", "WARNING", **production)
    assert checked.returncode == 0, checked.stderr
    assert "System check identified no issues" in checked.stdout
    assert "WARNINGS" not in checked.stderr


SECURITY_SETTINGS = [
    "SESSION_COOKIE_SECURE",
    "CSRF_COOKIE_SECURE",
    "SECURE_SSL_REDIRECT",
    "SECURE_HSTS_SECONDS",
    "SECURE_HSTS_INCLUDE_SUBDOMAINS",
    "SECURE_HSTS_PRELOAD",
    "SECURE_PROXY_SSL_HEADER",
]


def security_settings(site, **env: str) -> dict[str, object]:
    shown = site(
        "shell",
        "-c",
        "from django.conf import settings; "
        f"print(repr({{name: getattr(settings, name) for name in {SECURITY_SETTINGS!r}}}))",
        **env,
    )
    assert shown.returncode == 0, shown.stderr
    return ast.literal_eval(shown.stdout.strip().splitlines()[-1])


def test_https_switches_are_on_by_default_with_debug_off(site):
    assert security_settings(site, DEBUG="0", SECRET_KEY=secrets.token_urlsafe(50)) == {
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": True,
        "SECURE_HSTS_SECONDS": 31_536_000,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": True,
        # Trusting a forwarded-protocol header is only safe behind a proxy that sets it.
        "SECURE_PROXY_SSL_HEADER": None,
    }


def test_https_switches_are_off_in_development_and_each_can_be_set(site):
    assert not any(security_settings(site, DEBUG="1").values())
    assert security_settings(
        site,
        DEBUG="0",
        SECURE_SSL_REDIRECT="0",
        SECURE_HSTS_SECONDS="3600",
        SECURE_HSTS_PRELOAD="0",
        SECURE_PROXY_SSL_HEADER="X-Forwarded-Proto",
    ) == {
        "SESSION_COOKIE_SECURE": True,
        "CSRF_COOKIE_SECURE": True,
        "SECURE_SSL_REDIRECT": False,
        "SECURE_HSTS_SECONDS": 3600,
        "SECURE_HSTS_INCLUDE_SUBDOMAINS": True,
        "SECURE_HSTS_PRELOAD": False,
        "SECURE_PROXY_SSL_HEADER": ("HTTP_X_FORWARDED_PROTO", "https"),
    }


def send_limits(site, **env: str) -> tuple[object, object]:
    shown = site(
        "shell",
        "-c",
        "from django.conf import settings; "
        "print(repr((settings.VERIFICATION['RATE_LIMITS'], "
        "settings.VERIFICATION['CHALLENGE_AFTER'])))",
        **env,
    )
    assert shown.returncode == 0, shown.stderr
    return ast.literal_eval(shown.stdout.strip().splitlines()[-1])


def test_switching_every_send_limit_off_switches_the_challenge_off_too(site):
    limits, challenge = send_limits(site)
    assert limits["ip"] == (30, 3600)
    assert challenge == (3, 3600)
    assert send_limits(site, VERIFICATION_RATE_LIMITS="off") == (None, None)
    # Unless the challenge is asked for on its own.
    assert send_limits(
        site, VERIFICATION_RATE_LIMITS="off", VERIFICATION_CHALLENGE_AFTER="2/60"
    ) == (None, (2, 60))
