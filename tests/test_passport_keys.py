from __future__ import annotations

import io
import stat

import pytest
from django.core.management import CommandError, call_command

from verification import passport


def test_passport_keys_writes_a_private_key_and_prints_its_public_key(tmp_path, settings):
    path = tmp_path / "bot.pem"
    out = io.StringIO()
    call_command("passport_keys", private_key_file=str(path), stdout=out, stderr=io.StringIO())
    key = passport.private_key_load(path.read_text())
    assert key.key_size == 2048
    assert out.getvalue().strip() == passport.public_key_pem(key).strip()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    # The key passes the system checks as a path.
    settings.VERIFICATION = {"PASSPORT_BOT_TOKEN": "1:x", "PASSPORT_PRIVATE_KEY": str(path)}
    from verification import checks

    assert checks.check_passport_key_readable() == []
    assert checks.check_passport_key_present() == []


def test_passport_keys_keeps_an_existing_key(tmp_path):
    path = tmp_path / "bot.pem"
    path.write_text("keep me")
    with pytest.raises(CommandError):
        call_command("passport_keys", private_key_file=str(path), stdout=io.StringIO())
    assert path.read_text() == "keep me"


@pytest.mark.parametrize(
    ("config", "expected"),
    [
        ({"PASSPORT_BOT_TOKEN": "not a token", "PASSPORT_PRIVATE_KEY": "x"}, "verification.E050"),
        ({"PASSPORT_BOT_TOKEN": "1:x"}, "verification.E051"),
        (
            {"PASSPORT_BOT_TOKEN": "1:x", "PASSPORT_PRIVATE_KEY": "/nonexistent.pem"},
            "verification.E052",
        ),
        (
            {"PASSPORT_BOT_TOKEN": "1:x", "PASSPORT_PRIVATE_KEY": "-----BEGIN junk"},
            "verification.E052",
        ),
        ({"PASSPORT_PRIVATE_KEY": "-----BEGIN junk"}, "verification.W053"),
    ],
)
def test_passport_checks(settings, config, expected):
    from django.core.checks import run_checks

    settings.VERIFICATION = config
    ids = {message.id for message in run_checks()}
    assert expected in ids
