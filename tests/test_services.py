from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from verification import services
from verification.errors import ErrorCode, VerificationError
from verification.gateway import SentCode
from verification.models import PhoneVerification, SenderAccount, VerificationEvent
from verification.selectors import sender_account_pick, verification_snapshot

pytestmark = pytest.mark.django_db

PHONE = "+9996621234"


@pytest.fixture
def leased(fake_settings, make_sender):
    account = make_sender()
    services.sender_account_leases_renew(owner="worker-a")
    return account


def start(owner="owner-1", phone=PHONE):
    verification, _ = services.verification_start(owner=owner, user=None, phone_number=phone)
    return verification


def sent(verification, **overrides):
    code = SentCode(
        type="sms", phone_code_hash="hash-1", length=5, next_type="call", timeout=60, **overrides
    )
    return services.verification_code_sent(verification_id=verification.pk, sent=code)


def test_no_account_at_all_is_no_sender_account(fake_settings):
    with pytest.raises(VerificationError) as error:
        start()
    assert error.value.code is ErrorCode.NO_SENDER_ACCOUNT


def test_account_without_a_live_worker_is_telegram_unavailable(fake_settings, make_sender):
    make_sender()
    with pytest.raises(VerificationError) as error:
        start()
    assert error.value.code is ErrorCode.TELEGRAM_UNAVAILABLE


def test_a_lease_has_one_owner_until_it_expires(fake_settings, make_sender):
    account = make_sender()
    assert [a.pk for a in services.sender_account_leases_renew(owner="a")] == [account.pk]
    assert services.sender_account_leases_renew(owner="b") == []
    SenderAccount.objects.update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert [a.pk for a in services.sender_account_leases_renew(owner="b")] == [account.pk]
    assert services.sender_account_leases_renew(owner="a") == []


def test_flooded_and_dead_accounts_are_not_picked(leased):
    services.sender_account_mark_flooded(account_id=leased.pk, seconds=60)
    assert sender_account_pick() is None
    SenderAccount.objects.update(flood_until=None)
    assert sender_account_pick() == leased
    services.sender_account_mark_dead(account_id=leased.pk, error="AuthKeyUnregisteredError")
    assert sender_account_pick() is None


def test_sessions_and_hashes_are_encrypted_at_rest(leased):
    from django.db import connection

    verification = sent(start())
    with connection.cursor() as cursor:
        cursor.execute("SELECT session FROM verification_senderaccount")
        (session,) = cursor.fetchone()
        cursor.execute("SELECT phone_code_hash FROM verification_phoneverification")
        (code_hash,) = cursor.fetchone()
    assert session and "fake-session" not in session
    assert code_hash and "hash-1" not in code_hash
    assert PhoneVerification.objects.get().phone_code_hash == "hash-1"
    assert "hash" not in str(verification_snapshot(verification))


def test_start_cancels_the_owners_active_verification(leased):
    first = sent(start())
    second, cancelled = services.verification_start(
        owner="owner-1", user=None, phone_number="+9996631234"
    )
    assert [v.pk for v in cancelled] == [first.pk]
    first.refresh_from_db()
    assert first.status == "cancelled"
    assert second.status == "sending"
    other = start(owner="owner-2")
    assert other.status == "sending"
    second.refresh_from_db()
    assert second.status == "sending"


def test_resend_deadline_is_enforced(leased):
    verification = sent(start())
    with pytest.raises(VerificationError) as error:
        services.verification_resend_request(verification_id=verification.pk)
    assert error.value.code is ErrorCode.RESEND_NOT_AVAILABLE
    assert 59 <= error.value.retry_after <= 60
    PhoneVerification.objects.update(resend_at=timezone.now())
    services.verification_resend_request(verification_id=verification.pk)
    # One resend in flight: a double click (or a second tab) sends no second request.
    with pytest.raises(services.ResendInFlight):
        services.verification_resend_request(verification_id=verification.pk)
    # Telegram's answer frees it.
    services.verification_send_failed(
        verification_id=verification.pk, code=ErrorCode.TELEGRAM_UNAVAILABLE
    )
    services.verification_resend_request(verification_id=verification.pk)


def test_no_next_type_once_resends_are_used_up(leased, settings):
    settings.VERIFICATION = {**settings.VERIFICATION, "MAX_RESENDS": 1}
    verification = sent(start())
    code = SentCode(type="call", phone_code_hash="h2", length=5, next_type="sms", timeout=5)
    updated = services.verification_code_sent(
        verification_id=verification.pk, sent=code, resent=True
    )
    snapshot = verification_snapshot(updated)
    assert snapshot["next_type"] is None
    assert snapshot["resend_in"] is None


@pytest.mark.parametrize(
    ("address", "bucket"),
    [
        ("203.0.113.7", "203.0.113.7"),
        ("::ffff:203.0.113.7", "203.0.113.7"),
        ("2001:db8:1:2:3:4:5:6", "2001:db8:1:2::/64"),
        ("", ""),
    ],
)
def test_ip_buckets(address, bucket):
    assert services._ip_bucket(address) == bucket


def test_no_next_type_means_send_code_unavailable(leased):
    verification = start()
    code = SentCode(type="call", phone_code_hash="h", length=5)
    services.verification_code_sent(verification_id=verification.pk, sent=code)
    with pytest.raises(VerificationError) as error:
        services.verification_resend_request(verification_id=verification.pk)
    assert error.value.code is ErrorCode.SEND_CODE_UNAVAILABLE


def test_attempts_are_capped(leased):
    verification = sent(start())
    for _ in range(4):
        services.verification_attempt_start(verification_id=verification.pk)
        _, shown = services.verification_attempt_result(
            verification_id=verification.pk, error=ErrorCode.PHONE_CODE_INVALID
        )
        assert shown is ErrorCode.PHONE_CODE_INVALID
    services.verification_attempt_start(verification_id=verification.pk)
    updated, shown = services.verification_attempt_result(
        verification_id=verification.pk, error=ErrorCode.PHONE_CODE_INVALID
    )
    assert shown is ErrorCode.TOO_MANY_ATTEMPTS
    assert updated.status == "failed"
    assert updated.last_error == "TOO_MANY_ATTEMPTS"


def test_unjudged_attempts_are_given_back(leased):
    verification = sent(start())
    services.verification_attempt_start(verification_id=verification.pk)
    updated, shown = services.verification_attempt_result(
        verification_id=verification.pk, error=ErrorCode.TELEGRAM_UNAVAILABLE
    )
    assert shown is ErrorCode.TELEGRAM_UNAVAILABLE
    assert updated.attempts == 0
    assert updated.status == "code_sent"


def test_expiry(leased):
    verification = sent(start())
    assert services.verification_expire_all_due() == []
    later = timezone.now() + timedelta(seconds=601)
    assert [v.pk for v in services.verification_expire_all_due(now=later)] == [verification.pk]
    verification.refresh_from_db()
    assert verification.status == "expired"
    assert services.verification_expire_all_due(now=later) == []


def test_events_are_append_only(leased):
    verification = start()
    event = VerificationEvent.objects.get(verification=verification)
    event.kind = "verified"
    with pytest.raises(ValueError):
        event.save()


def test_review_is_recorded(leased, django_user_model):
    staff = django_user_model.objects.create_user("staff")
    verification = start()
    services.verification_review(
        verification=verification, status="approved", staff_user=staff, note="looks right"
    )
    verification.refresh_from_db()
    assert verification.review_status == "approved"
    assert verification.reviewed_by == staff
    event = verification.events.last()
    assert event.kind == "reviewed"
    assert event.staff_user == staff


def test_rate_limit_per_phone(leased, settings):
    settings.VERIFICATION = {**settings.VERIFICATION, "RATE_LIMITS": {"phone": (2, 3600)}}
    start(owner="a")
    start(owner="b")
    with pytest.raises(VerificationError) as error:
        start(owner="c")
    assert error.value.code is ErrorCode.RATE_LIMITED
    start(owner="d", phone="+9996631234")


def test_cleanup_command(leased):
    from io import StringIO

    from django.core.management import call_command

    old = sent(start())
    PhoneVerification.objects.filter(pk=old.pk).update(
        expires_at=timezone.now() - timedelta(seconds=1),
        created_at=timezone.now() - timedelta(days=100),
    )
    out = StringIO()
    call_command("verification_cleanup", "--dry-run", stdout=out)
    assert "Would expire 1 and delete 0" in out.getvalue()
    call_command("verification_cleanup", stdout=out)
    assert not PhoneVerification.objects.filter(pk=old.pk).exists()


def test_sends_nobody_answered_fail(leased):
    verification = start()
    assert services.verification_fail_stuck_sends() == []
    later = timezone.now() + timedelta(seconds=61)
    [failed] = services.verification_fail_stuck_sends(now=later)
    assert failed.pk == verification.pk
    assert failed.status == "failed"
    assert failed.last_error == "TELEGRAM_UNAVAILABLE"
    assert services.verification_fail_stuck_sends(now=later) == []


def test_refused_sends_use_no_quota(fake_settings, make_sender, settings):
    settings.VERIFICATION = {**settings.VERIFICATION, "RATE_LIMITS": {"phone": (1, 3600)}}
    for _ in range(3):
        with pytest.raises(VerificationError) as error:
            start(owner="x")
        assert error.value.code is ErrorCode.NO_SENDER_ACCOUNT
    make_sender()
    services.sender_account_leases_renew(owner="worker-a")
    start(owner="x")
    with pytest.raises(VerificationError) as error:
        start(owner="y")
    assert error.value.code is ErrorCode.RATE_LIMITED
