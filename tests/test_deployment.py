"""passportsite as deployed: its embedded defaults and its DEBUG-off settings, in processes of
their own (``passportsite.settings`` with an explicit environment)."""

from __future__ import annotations

import os
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
