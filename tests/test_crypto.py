"""Secrets at rest: key rotation, and values no configured key can read."""

from __future__ import annotations

import base64
import copy
import hashlib
import logging
import pickle
from collections.abc import Callable, Iterator
from io import StringIO
from typing import Any

import pytest
from cryptography.fernet import Fernet, InvalidToken
from django.core.checks import WARNING, run_checks
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connection
from django.urls import reverse

from verification.crypto import (
    DecryptionError,
    Undecryptable,
    decrypt,
    encrypt,
    is_undecryptable,
)
from verification.models import PhoneVerification, SenderAccount

pytestmark = pytest.mark.django_db

OLD, NEW, LOST = "old-key-material", "new-key-material", "key-nobody-has-any-more"


def fernet_for(key: str) -> Fernet:
    # The derivation rows have been written with since before ENCRYPTION_KEYS existed.
    digest = hashlib.sha256(b"verification-at-rest:" + key.encode()).digest()
    return Fernet(base64.urlsafe_b64encode(digest))


def readable_with(key: str, token: str) -> bool:
    try:
        fernet_for(key).decrypt(token.encode())
    except InvalidToken:
        return False
    return True


@pytest.fixture
def use_keys(settings: Any) -> Callable[..., None]:
    """``use_keys(*keys, **verification)``: VERIFICATION["ENCRYPTION_KEYS"], newest first."""

    def apply(*keys: str, **verification: Any) -> None:
        settings.VERIFICATION = {
            **settings.VERIFICATION,
            "ENCRYPTION_KEY": "",
            "ENCRYPTION_KEYS": list(keys),
            **verification,
        }

    return apply


@pytest.fixture
def verification_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    # The site's LOGGING may keep "verification" from propagating to caplog's root handler.
    logger = logging.getLogger("verification")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.ERROR, logger="verification"):
            yield caplog
    finally:
        logger.removeHandler(caplog.handler)


@pytest.fixture
def make_rows() -> Callable[..., tuple[SenderAccount, PhoneVerification]]:
    """``make_rows(n)``: a sender account and a verification whose secrets end in ``n``."""

    def make(n: int = 1) -> tuple[SenderAccount, PhoneVerification]:
        account = SenderAccount.objects.create(
            phone_number=f"+99966100{n:02}", session=f"session-{n}"
        )
        verification = PhoneVerification.objects.create(
            owner=f"owner-{n}", phone_number=f"+99966200{n:02}", phone_code_hash=f"hash-{n}"
        )
        return account, verification

    return make


def stored(instance: SenderAccount | PhoneVerification) -> str:
    """The secret column of ``instance``'s row as it is in the database."""
    meta = instance._meta
    column = "session" if isinstance(instance, SenderAccount) else "phone_code_hash"
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT {column} FROM {meta.db_table} WHERE {meta.pk.column} = %s",
            [meta.pk.get_db_prep_value(instance.pk, connection)],
        )
        return cursor.fetchone()[0]


def plaintexts() -> list[str]:
    return [a.session for a in SenderAccount.objects.order_by("pk")] + [
        v.phone_code_hash for v in PhoneVerification.objects.order_by("phone_number")
    ]


def rotate_keys(*args: str) -> tuple[str, str]:
    out, err = StringIO(), StringIO()
    call_command("verification_rotate_keys", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


# Reading and writing --------------------------------------------------------------------------


def test_round_trip(use_keys, make_rows):
    use_keys(NEW)
    assert decrypt(encrypt("secret")) == "secret"
    account, verification = make_rows()
    assert "session-1" not in stored(account)
    assert readable_with(NEW, stored(account))
    assert SenderAccount.objects.get().session == "session-1"
    assert PhoneVerification.objects.get().phone_code_hash == "hash-1"


def test_rows_written_before_key_lists_existed_stay_readable(settings, use_keys):
    use_keys()
    from_secret_key = fernet_for(settings.SECRET_KEY).encrypt(b"written-long-ago").decode()
    assert decrypt(from_secret_key) == "written-long-ago"
    use_keys(ENCRYPTION_KEY=OLD)
    from_encryption_key = fernet_for(OLD).encrypt(b"written-long-ago").decode()
    assert decrypt(from_encryption_key) == "written-long-ago"
    # Moving ENCRYPTION_KEY into ENCRYPTION_KEYS changes nothing for stored rows.
    use_keys(OLD)
    assert decrypt(from_encryption_key) == "written-long-ago"


def test_a_new_key_in_front_reads_old_rows_and_writes_new_ones(use_keys, make_rows):
    use_keys(OLD)
    make_rows(1)
    use_keys(NEW, OLD)
    assert plaintexts() == ["session-1", "hash-1"]
    account, verification = make_rows(2)
    for instance in (account, verification):
        assert readable_with(NEW, stored(instance))
        assert not readable_with(OLD, stored(instance))


def test_a_blank_key_never_encrypts(use_keys):
    use_keys("", OLD)
    assert readable_with(OLD, encrypt("secret"))


def test_secret_key_fallbacks_decrypt_after_a_secret_key_change(settings, use_keys, make_rows):
    use_keys()
    first, second = "the-first-secret-key-" + "x" * 40, "a-new-secret-key-" + "y" * 40
    settings.SECRET_KEY = first
    make_rows()
    settings.SECRET_KEY, settings.SECRET_KEY_FALLBACKS = second, [first]
    assert plaintexts() == ["session-1", "hash-1"]
    out, _ = rotate_keys()
    assert out == "Re-encrypted 1 sender sessions and 1 verification hashes; 0 unreadable.\n"
    settings.SECRET_KEY_FALLBACKS = []
    assert plaintexts() == ["session-1", "hash-1"]


# Values no configured key can read ------------------------------------------------------------


def test_an_unreadable_token_raises_and_is_logged_without_secrets(use_keys, verification_log):
    use_keys(NEW, OLD)
    token = fernet_for(LOST).encrypt(b"secret-plaintext").decode()
    with pytest.raises(DecryptionError):
        decrypt(token)
    (record,) = verification_log.records
    assert record.levelno == logging.ERROR
    message = record.getMessage()
    assert "cannot be decrypted with any configured key" in message
    assert "VERIFICATION['ENCRYPTION_KEYS']" in message
    assert "manage.py verification_rotate_keys" in message
    assert token not in verification_log.text
    assert "secret-plaintext" not in verification_log.text


def test_an_unreadable_row_loads_as_undecryptable_not_empty(use_keys, make_rows, verification_log):
    use_keys(LOST)
    make_rows()
    use_keys(NEW)
    session = SenderAccount.objects.get().session
    code_hash = PhoneVerification.objects.get().phone_code_hash
    for value in (session, code_hash):
        assert is_undecryptable(value)
        assert isinstance(value, Undecryptable)
        assert value == ""
    assert not is_undecryptable("")
    assert not is_undecryptable(SenderAccount(session="").session)
    messages = [r.getMessage() for r in verification_log.records]
    assert len(messages) == 2
    assert "(verification.SenderAccount.session)" in messages[0]
    assert "(verification.PhoneVerification.phone_code_hash)" in messages[1]


def test_saving_a_row_with_an_unreadable_value_keeps_its_ciphertext(use_keys, make_rows):
    use_keys(LOST)
    account, verification = make_rows()
    before = stored(account), stored(verification)
    use_keys(NEW)
    account = SenderAccount.objects.get()
    account.label = "renamed while the key was missing"
    account.save()
    verification = PhoneVerification.objects.get()
    verification.status = PhoneVerification.Status.EXPIRED
    verification.save()
    assert (stored(account), stored(verification)) == before
    # Once the old key is back, nothing was lost.
    use_keys(NEW, LOST)
    assert plaintexts() == ["session-1", "hash-1"]
    assert SenderAccount.objects.get().label == "renamed while the key was missing"


def test_the_admin_still_shows_rows_with_unreadable_values(use_keys, make_rows, admin_client):
    use_keys(LOST)
    account, verification = make_rows()
    use_keys(NEW)
    pages = [
        reverse("admin:verification_senderaccount_changelist"),
        reverse("admin:verification_senderaccount_change", args=[account.pk]),
        reverse("admin:verification_phoneverification_changelist"),
        reverse("admin:verification_phoneverification_change", args=[verification.pk]),
    ]
    for url in pages:
        assert admin_client.get(url).status_code == 200, url
    changelist = admin_client.get(pages[0]).content.decode()
    assert account.phone_number in changelist


def test_undecryptable_hides_its_ciphertext_and_survives_copies():
    value = Undecryptable("gAAAA-ciphertext")
    assert repr(value) == "<Undecryptable>"
    assert str(value) == ""
    for copied in (copy.copy(value), copy.deepcopy(value), pickle.loads(pickle.dumps(value))):
        assert is_undecryptable(copied)
        assert copied.ciphertext == "gAAAA-ciphertext"


# verification_rotate_keys ---------------------------------------------------------------------


def test_after_rotation_the_old_key_can_be_dropped(use_keys, make_rows):
    use_keys(OLD)
    rows = [make_rows(n) for n in (1, 2, 3)]
    use_keys(NEW, OLD)
    out, err = rotate_keys("--batch-size", "2")
    assert out == "Re-encrypted 3 sender sessions and 3 verification hashes; 0 unreadable.\n"
    assert err == ""
    for pair in rows:
        for instance in pair:
            assert readable_with(NEW, stored(instance))
    use_keys(NEW)
    assert plaintexts() == [f"session-{n}" for n in (1, 2, 3)] + [f"hash-{n}" for n in (1, 2, 3)]
    # Rows already under the newest key are not rewritten again.
    out, _ = rotate_keys()
    assert out == "Re-encrypted 0 sender sessions and 0 verification hashes; 0 unreadable.\n"


def test_a_value_written_during_rotation_is_not_replaced(use_keys, make_rows, monkeypatch):
    from verification.management.commands import verification_rotate_keys as command

    use_keys(OLD)
    _, verification = make_rows()
    old_hash = stored(verification)
    use_keys(NEW, OLD)
    rotate = command.rotate

    def rotate_while_the_worker_writes(token: str) -> str:
        if token == old_hash:
            # A resend stores a new hash between the command's read and its write.
            PhoneVerification.objects.filter(pk=verification.pk).update(phone_code_hash="hash-new")
        return rotate(token)

    monkeypatch.setattr(command, "rotate", rotate_while_the_worker_writes)
    out, _ = rotate_keys()
    assert out == "Re-encrypted 1 sender sessions and 0 verification hashes; 0 unreadable.\n"
    assert PhoneVerification.objects.get().phone_code_hash == "hash-new"


def test_empty_values_are_left_empty(use_keys):
    use_keys(NEW, OLD)
    account = SenderAccount.objects.create(phone_number="+9996610001")
    out, _ = rotate_keys()
    assert out == "Re-encrypted 0 sender sessions and 0 verification hashes; 0 unreadable.\n"
    assert stored(account) == ""


def test_dry_run_writes_nothing(use_keys, make_rows):
    use_keys(OLD)
    account, verification = make_rows()
    before = stored(account), stored(verification)
    use_keys(NEW, OLD)
    out, _ = rotate_keys("--dry-run")
    assert out == "Would re-encrypt 1 sender sessions and 1 verification hashes; 0 unreadable.\n"
    assert (stored(account), stored(verification)) == before


def test_unreadable_rows_are_reported_left_alone_and_fail_the_command(use_keys, make_rows):
    use_keys(LOST)
    lost_account, lost_verification = make_rows(1)
    use_keys(OLD)
    account, verification = make_rows(2)
    lost_before = stored(lost_account), stored(lost_verification)
    use_keys(NEW, OLD)
    out, err = StringIO(), StringIO()
    with pytest.raises(CommandError, match="2 stored values cannot be decrypted"):
        call_command("verification_rotate_keys", stdout=out, stderr=err)
    assert out.getvalue() == (
        "Re-encrypted 1 sender sessions and 1 verification hashes; 2 unreadable.\n"
    )
    assert err.getvalue().splitlines() == [
        f"Unreadable: verification.SenderAccount {lost_account.pk} (session)",
        f"Unreadable: verification.PhoneVerification {lost_verification.pk} (phone_code_hash)",
    ]
    assert (stored(lost_account), stored(lost_verification)) == lost_before
    assert readable_with(NEW, stored(account))
    assert readable_with(NEW, stored(verification))


def test_dry_run_also_fails_on_unreadable_rows(use_keys, make_rows):
    use_keys(LOST)
    make_rows()
    use_keys(NEW)
    with pytest.raises(CommandError):
        call_command("verification_rotate_keys", "--dry-run", stdout=StringIO(), stderr=StringIO())


# System check ---------------------------------------------------------------------------------


def key_warnings():
    return [message for message in run_checks() if message.id == "verification.W040"]


@pytest.mark.parametrize(
    ("verification", "text"),
    [
        (
            {"ENCRYPTION_KEY": OLD, "ENCRYPTION_KEYS": [NEW]},
            "VERIFICATION sets both ENCRYPTION_KEY and ENCRYPTION_KEYS: ENCRYPTION_KEY is ignored.",
        ),
        (
            {"ENCRYPTION_KEYS": [NEW, ""]},
            "VERIFICATION['ENCRYPTION_KEYS'] has an empty entry (or one that is not a string); "
            "it is ignored.",
        ),
        (
            {"ENCRYPTION_KEYS": [NEW, OLD, NEW]},
            "VERIFICATION['ENCRYPTION_KEYS'] lists the same key more than once.",
        ),
    ],
)
def test_key_configuration_warnings(use_keys, verification, text):
    use_keys(**verification)
    (message,) = key_warnings()
    assert message.id == "verification.W040"
    assert message.level == WARNING
    assert message.msg == text


@pytest.mark.parametrize(
    "verification",
    [
        {"ENCRYPTION_KEYS": [NEW, OLD]},
        {"ENCRYPTION_KEY": OLD},
        {},
        # A wrong type is E003's to report.
        {"ENCRYPTION_KEYS": NEW},
    ],
)
def test_sound_key_configurations_pass(use_keys, verification):
    use_keys(**verification)
    assert key_warnings() == []


def test_the_key_check_is_registered_with_django(use_keys):
    use_keys(NEW, NEW)
    assert "verification.W040" in [message.id for message in run_checks()]
