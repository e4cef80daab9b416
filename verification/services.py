"""Writes: the verification state machine, its events, caps and the sender-account leases.

Every function here is synchronous and transactional; async callers go through
``database_sync_to_async``.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, TypeVar

from django.core.cache import cache
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.dispatch import Signal
from django.utils import timezone

from . import rows, signals
from .addresses import address_bucket as _ip_bucket
from .app_settings import get_config
from .challenges import challenge_count, challenge_pass
from .errors import ErrorCode, VerificationError
from .gateway.base import LoginResult, SentCode
from .gateway.telegram_gateway import DELIVERY_RANK
from .limits import Limit, limits_release, limits_take
from .models import PhoneVerification, SenderAccount, VerificationEvent
from .selectors import (
    sender_account_exists,
    sender_account_flooded_until,
    sender_account_pick,
    verification_current,
    verification_get,
    verification_lock,
    verification_lock_active,
)

logger = logging.getLogger("verification")

T = TypeVar("T")

Status = PhoneVerification.Status
Transport = PhoneVerification.Transport
Kind = VerificationEvent.Kind
Actor = VerificationEvent.Actor


def _send_signal(signal: Signal, verification: PhoneVerification, **kwargs: Any) -> None:
    for receiver, result in signal.send_robust(
        sender=PhoneVerification, verification=verification, **kwargs
    ):
        if isinstance(result, Exception):
            logger.error("Signal receiver %r failed", receiver, exc_info=result)


def _on_commit_signal(signal: Signal, verification: PhoneVerification, **kwargs: Any) -> None:
    transaction.on_commit(lambda: _send_signal(signal, verification, **kwargs))


def event_record(
    *,
    verification: PhoneVerification,
    kind: str,
    actor: str,
    staff_user: Any = None,
    **data: Any,
) -> VerificationEvent:
    return rows.insert(
        VerificationEvent(
            verification=verification, kind=kind, actor=actor, staff_user=staff_user, data=data
        )
    )


def _limits(scopes: list[tuple[str, str]]) -> list[Limit]:
    """The configured limits of ``scopes`` (scope, value); scopes without a value are skipped."""
    config = get_config()["RATE_LIMITS"]
    return [
        Limit(scope, value, *config[scope])
        for scope, value in scopes
        if value and config.get(scope)
    ]


class ResendInFlight(Exception):
    """A resend of this verification is already with Telegram; its answer reaches every tab."""


def _resend_lock_key(verification_id: Any) -> str:
    return f"verification:resend:{verification_id}"


def _flood_key(phone_number: str) -> str:
    return f"verification:flood:{phone_number}"


def verification_start(
    *,
    owner: str,
    user: Any,
    phone_number: str,
    region: str = "",
    ip_address: str | None = None,
    challenge: Any = None,
) -> tuple[PhoneVerification, list[PhoneVerification]]:
    """Start a verification for ``owner``; returns it and the active ones it cancelled.

    One transaction. The database holds "one active verification per owner" (a partial unique
    constraint): when two tabs start at once, the loser's insert conflicts, and it retries,
    cancelling the winner's verification as any later start would.

    Past ``CHALLENGE_AFTER`` sends, ``challenge`` (the page's answer) must pass the challenge
    (:mod:`verification.challenges`) before anything is counted.
    """
    now = timezone.now()
    flood_until = cache.get(_flood_key(phone_number))
    if flood_until and flood_until > now:
        raise VerificationError(
            ErrorCode.FLOOD_WAIT, retry_after=math.ceil((flood_until - now).total_seconds())
        )
    address = _ip_bucket(ip_address)
    challenge_pass(owner=owner, address=address, answer=challenge, now=now.timestamp())
    limits = _limits(
        [
            ("session", owner),
            ("phone", phone_number),
            ("ip", address),
            ("user", str(user.pk) if user is not None else ""),
            ("global", "all"),
        ]
    )
    taken = limits_take(limits=limits, now=now.timestamp())
    try:
        started = race_retried(
            lambda: _start(
                owner=owner, user=user, phone_number=phone_number, region=region,
                ip_address=ip_address, now=now,
            )
        )  # fmt: skip
    except BaseException:
        # A send that never happened (no account, a lost race) uses up no quota.
        limits_release(keys=taken)
        raise
    challenge_count(owner=owner, address=address, now=now.timestamp())
    return started


@transaction.atomic
def _start(
    *,
    owner: str,
    user: Any,
    phone_number: str,
    region: str,
    ip_address: str | None,
    now: datetime,
) -> tuple[PhoneVerification, list[PhoneVerification]]:
    config = get_config()
    account: SenderAccount | None = None
    account_taken: list[str] = []
    transport = _transport_first()
    if transport == Transport.SENDER:
        try:
            account, account_taken = _sender_pick_within_budget(now)
        except VerificationError:
            if _transport_after(Transport.SENDER) != Transport.GATEWAY:
                raise
            transport = Transport.GATEWAY
    try:
        return _insert(
            owner=owner, user=user, phone_number=phone_number, region=region,
            ip_address=ip_address, now=now, account=account, expires_after=config["EXPIRES_AFTER"],
            transport=transport,
        )  # fmt: skip
    except BaseException:
        limits_release(keys=account_taken)
        raise


def _sender_pick_within_budget(now: datetime) -> tuple[SenderAccount, list[str]]:
    """A sender account with budget left, and the budget counter taken from it."""
    refusal: VerificationError | None = None
    seen: set[int] = set()
    # Picks take turns, so repeated picks walk the accounts; a repeat means all were tried.
    for _ in range(32):
        account = sender_account_pick(now=now)
        if account is None or account.pk in seen:
            break
        seen.add(account.pk)
        try:
            return account, limits_take(
                limits=_limits([("account", str(account.pk))]), now=now.timestamp()
            )
        except VerificationError as exc:
            if refusal is None or (exc.retry_after or 0) < (refusal.retry_after or 0):
                refusal = exc
    raise refusal or _no_sender(now)


def _insert(
    *,
    owner: str,
    user: Any,
    phone_number: str,
    region: str,
    ip_address: str | None,
    now: datetime,
    account: SenderAccount | None,
    expires_after: int,
    transport: str = "sender",
) -> tuple[PhoneVerification, list[PhoneVerification]]:
    return verification_replace(
        PhoneVerification(
            owner=owner,
            user=user,
            phone_number=phone_number,
            region=region,
            sender_account=account,
            transport=transport,
            status=Status.SENDING,
            expires_at=now + timedelta(seconds=expires_after),
            ip_address=ip_address,
        )
    )


def verification_replace(
    verification: PhoneVerification, **started: Any
) -> tuple[PhoneVerification, list[PhoneVerification]]:
    """Insert a new ``verification`` in place of its owner's active ones, which are cancelled;
    returns it and them. Call inside a transaction.

    The insert runs in a savepoint: when another tab's start won the race for "one active
    verification per owner", only it rolls back, with IntegrityError (see :func:`race_retried`).
    """
    cancelled = [
        _finish(previous, Status.CANCELLED, kind=Kind.CANCELLED, actor=Actor.VISITOR,
                reason="replaced")
        for previous in verification_lock_active(owner=verification.owner)
    ]  # fmt: skip
    with transaction.atomic():
        rows.insert(verification)
    event_record(verification=verification, kind=Kind.STARTED, actor=Actor.VISITOR, **started)
    _on_commit_signal(signals.verification_started, verification)
    return verification, cancelled


def race_retried(start: Callable[[], T]) -> T:
    """``start()``, tried again when it lost the race for the owner's one active verification:
    the retry sees the winner and replaces it, as any later start would."""
    for attempt in range(3):
        try:
            return start()
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


def _no_sender(now: datetime) -> VerificationError:
    """Why no sender account can take a verification now."""
    flooded_until = sender_account_flooded_until(now=now)
    if flooded_until is not None:
        # Every connected sender is waiting out an account flood: say when one is free.
        return VerificationError(
            ErrorCode.FLOOD_WAIT, retry_after=math.ceil((flooded_until - now).total_seconds())
        )
    if sender_account_exists():
        return VerificationError(ErrorCode.TELEGRAM_UNAVAILABLE)
    return VerificationError(ErrorCode.NO_SENDER_ACCOUNT)


_SENT_CODE_FIELDS = [
    "code_type",
    "code_length",
    "code_pattern",
    "code_prefix",
    "code_url",
    "code_beginning",
    "next_type",
    "phone_code_hash",
    "sent_at",
    "resend_at",
    "status",
    "last_error",
    "resends",
    "flood_until",
]


def _apply_sent_code(verification: PhoneVerification, sent: SentCode, now: datetime) -> None:
    verification.code_type = sent.type
    verification.code_length = sent.length
    verification.code_pattern = sent.pattern
    verification.code_prefix = sent.prefix
    verification.code_url = sent.url
    verification.code_beginning = sent.beginning
    verification.next_type = sent.next_type or ""
    verification.phone_code_hash = sent.phone_code_hash
    verification.sent_at = now
    if sent.next_type:
        timeout = (
            sent.timeout if sent.timeout is not None else get_config()["DEFAULT_RESEND_TIMEOUT"]
        )
        verification.resend_at = now + timedelta(seconds=timeout)
    else:
        verification.resend_at = None


@transaction.atomic
def verification_code_sent(
    *,
    verification_id: Any,
    sent: SentCode,
    resent: bool = False,
    gateway_request_id: str = "",
    cost: dict[str, Any] | None = None,
) -> PhoneVerification | None:
    """Record the code Telegram sent. None when the verification ended meanwhile.

    A Gateway API message also gives its request id and what it cost (``request_cost``,
    ``remaining_balance``), kept on the event.
    """
    now = timezone.now()
    verification = _lock(verification_id)
    expected = Status.CODE_SENT if resent else Status.SENDING
    if verification is None or verification.status != expected:
        return None
    _apply_sent_code(verification, sent, now)
    verification.status = Status.CODE_SENT
    verification.last_error = ""
    if resent:
        verification.resends += 1
        cache.delete(_resend_lock_key(verification.pk))
    if verification.resends >= get_config()["MAX_RESENDS"]:
        # No resend is left, so there is no next way to offer.
        verification.next_type = ""
        verification.resend_at = None
    fields = _SENT_CODE_FIELDS
    if gateway_request_id:
        # A new message: its delivery starts over.
        verification.gateway_request_id = gateway_request_id
        verification.delivery = ""
        fields = [*fields, "gateway_request_id", "delivery"]
    rows.update(verification, fields)
    event_record(
        verification=verification,
        kind=Kind.CODE_RESENT if resent else Kind.CODE_SENT,
        actor=Actor.TELEGRAM,
        code_type=sent.type,
        length=sent.length,
        next_type=sent.next_type,
        timeout=sent.timeout,
        **({"request_id": gateway_request_id, **(cost or {})} if gateway_request_id else {}),
    )
    _on_commit_signal(signals.verification_code_sent, verification, resent=resent)
    return verification


def _finish(
    verification: PhoneVerification,
    status: str,
    *,
    kind: str,
    actor: str,
    error: str = "",
    staff_user: Any = None,
    **data: Any,
) -> PhoneVerification:
    verification.status = status
    verification.finished_at = timezone.now()
    verification.resend_at = None
    if error:
        verification.last_error = error
    elif status in {Status.VERIFIED, Status.CANCELLED}:
        verification.last_error = ""
    rows.update(
        verification,
        ["status", "finished_at", "resend_at", "last_error", "attempts", "flood_until"],
    )
    if error:
        data["error"] = error
    event_record(verification=verification, kind=kind, actor=actor, staff_user=staff_user, **data)
    if status == Status.VERIFIED:
        _on_commit_signal(signals.verification_verified, verification)
    elif status == Status.FAILED:
        _on_commit_signal(signals.verification_failed, verification, error=error)
    elif status == Status.CANCELLED:
        _on_commit_signal(signals.verification_cancelled, verification)
    elif status == Status.EXPIRED:
        _on_commit_signal(signals.verification_expired, verification)
    return verification


@transaction.atomic
def verification_send_failed(
    *,
    verification_id: Any,
    code: ErrorCode,
    retry_after: int | None = None,
    telegram_error: str = "",
    cost: dict[str, Any] | None = None,
) -> PhoneVerification | None:
    """Record a failed send (or resend). Returns the verification, None if it ended meanwhile.

    ``cost`` is what the failed send was billed all the same (a Gateway ``checkSendAbility``
    with no message after it); it goes on the event, so the spend per day counts it.
    """
    now = timezone.now()
    cache.delete(_resend_lock_key(verification_id))
    verification = _lock(verification_id)
    if verification is None or not verification.is_active:
        return None
    if code is ErrorCode.FLOOD_WAIT and retry_after:
        until = now + timedelta(seconds=retry_after)
        verification.flood_until = until
        cache.set(_flood_key(verification.phone_number), until, timeout=retry_after)
    if verification.status == Status.CODE_SENT and code not in {
        ErrorCode.PHONE_NUMBER_INVALID,
        ErrorCode.PHONE_NUMBER_BANNED,
    }:
        # A failed resend leaves the code already sent usable.
        if code is ErrorCode.SEND_CODE_UNAVAILABLE:
            verification.next_type = ""
            verification.resend_at = None
        elif code is ErrorCode.PHONE_CODE_EXPIRED:
            return _finish(
                verification,
                Status.EXPIRED,
                kind=Kind.EXPIRED,
                actor=Actor.TELEGRAM,
                error=code,
                telegram_error=telegram_error,
            )
        elif retry_after:
            verification.resend_at = now + timedelta(seconds=retry_after)
        else:
            verification.resend_at = now
        verification.last_error = code
        rows.update(verification, ["flood_until", "next_type", "resend_at", "last_error"])
        event_record(
            verification=verification,
            kind=Kind.ERROR,
            actor=Actor.TELEGRAM,
            error=code,
            telegram_error=telegram_error,
            retry_after=retry_after,
            **(cost or {}),
        )
        return verification
    return _finish(
        verification,
        Status.FAILED,
        kind=Kind.FAILED,
        actor=Actor.TELEGRAM,
        error=code,
        telegram_error=telegram_error,
        retry_after=retry_after,
        **(cost or {}),
    )


def _usable(verification_id: Any) -> PhoneVerification:
    """Lock an active verification, or raise NO_ACTIVE_VERIFICATION.

    Call :func:`verification_expire_if_due` first: an expiry must be committed, not rolled back
    with the refusal.
    """
    verification = _lock(verification_id)
    if verification is None or not verification.is_active:
        raise VerificationError(ErrorCode.NO_ACTIVE_VERIFICATION)
    return verification


def _lock(verification_id: Any) -> PhoneVerification | None:
    """Lock a verification's row for this transaction; None if it is gone."""
    return verification_lock(verification_id=verification_id)


def verification_live(*, owner: str) -> tuple[PhoneVerification | None, bool]:
    """The owner's current verification, expired first if its deadline passed.

    Returns it and whether this call expired it. One query when nothing is due.
    """
    verification = verification_current(owner=owner)
    if verification is None or not verification.is_active:
        return verification, False
    if verification.expires_at is None or verification.expires_at > timezone.now():
        return verification, False
    expired = verification_expire_if_due(verification_id=verification.pk)
    return (
        (expired, True)
        if expired is not None
        else (verification_get(verification_id=verification.pk), False)
    )


@transaction.atomic
def verification_resend_request(*, verification_id: Any) -> PhoneVerification:
    """Check that a resend is allowed now and claim it; raise VerificationError if not."""
    now = timezone.now()
    verification = _usable(verification_id)
    if verification.status != Status.CODE_SENT:
        raise VerificationError(ErrorCode.RESEND_NOT_AVAILABLE, retry_after=1)
    if not verification.next_type or verification.resends >= get_config()["MAX_RESENDS"]:
        raise VerificationError(ErrorCode.SEND_CODE_UNAVAILABLE)
    if verification.resend_at and verification.resend_at > now:
        wait = math.ceil((verification.resend_at - now).total_seconds())
        raise VerificationError(ErrorCode.RESEND_NOT_AVAILABLE, retry_after=wait)
    # One resend in flight: a double click or a second tab gets its result with the first.
    if not cache.add(_resend_lock_key(verification.pk), 1, timeout=get_config()["REQUEST_TIMEOUT"]):
        raise ResendInFlight()
    event_record(verification=verification, kind=Kind.RESEND_REQUESTED, actor=Actor.VISITOR)
    return verification


def verification_resend_done(*, verification_id: Any) -> None:
    """A resend ended without reaching Telegram: another may be asked for."""
    cache.delete(_resend_lock_key(verification_id))


def verification_attempt_check(*, verification: PhoneVerification) -> None:
    """Raise VerificationError unless a code can be submitted now (counts nothing)."""
    if verification.status != Status.CODE_SENT:
        raise VerificationError(ErrorCode.NO_ACTIVE_VERIFICATION)
    if verification.attempts >= get_config()["MAX_ATTEMPTS"]:
        raise VerificationError(ErrorCode.TOO_MANY_ATTEMPTS)


@transaction.atomic
def verification_attempt_start(*, verification_id: Any) -> PhoneVerification:
    """Count one submitted code as it goes to Telegram; raise if no attempt is left.

    The worker calls this, so a request that never reaches a worker costs no attempt.
    """
    verification = _usable(verification_id)
    verification_attempt_check(verification=verification)
    # The row is locked: concurrent submits count one by one.
    verification.attempts += 1
    rows.update(verification, ["attempts"])
    event_record(verification=verification, kind=Kind.CODE_SUBMITTED, actor=Actor.VISITOR)
    return verification


@transaction.atomic
def verification_attempt_result(
    *, verification_id: Any, error: ErrorCode | None, telegram_error: str = ""
) -> tuple[PhoneVerification | None, ErrorCode | None]:
    """Record what Telegram said about a submitted code.

    Returns the verification (None if it ended meanwhile) and the error to show, which becomes
    TOO_MANY_ATTEMPTS when the last attempt was used up.
    """
    verification = _lock(verification_id)
    if verification is None or not verification.is_active:
        return None, error
    if error is None:
        # Only wrong codes count as attempts.
        verification.attempts = max(0, verification.attempts - 1)
        return _finish(
            verification, Status.VERIFIED, kind=Kind.VERIFIED, actor=Actor.TELEGRAM
        ), None
    if error is ErrorCode.PHONE_CODE_INVALID:
        event_record(verification=verification, kind=Kind.CODE_REJECTED, actor=Actor.TELEGRAM)
        if verification.attempts >= get_config()["MAX_ATTEMPTS"]:
            _finish(
                verification,
                Status.FAILED,
                kind=Kind.FAILED,
                actor=Actor.SYSTEM,
                error=ErrorCode.TOO_MANY_ATTEMPTS,
            )
            return verification, ErrorCode.TOO_MANY_ATTEMPTS
        verification.last_error = error
        rows.update(verification, ["last_error"])
        return verification, error
    if error is ErrorCode.TOO_MANY_ATTEMPTS:
        # Telegram stopped accepting codes for this message (the Gateway's own attempt limit).
        event_record(verification=verification, kind=Kind.CODE_REJECTED, actor=Actor.TELEGRAM)
        _finish(verification, Status.FAILED, kind=Kind.FAILED, actor=Actor.TELEGRAM, error=error)
        return verification, error
    if error is ErrorCode.PHONE_CODE_EXPIRED:
        _finish(
            verification,
            Status.EXPIRED,
            kind=Kind.EXPIRED,
            actor=Actor.TELEGRAM,
            error=error,
            telegram_error=telegram_error,
        )
        return verification, error
    if error in {ErrorCode.TELEGRAM_UNAVAILABLE, ErrorCode.INTERNAL, ErrorCode.FLOOD_WAIT}:
        # The code was never judged: give the attempt back.
        verification.attempts = max(0, verification.attempts - 1)
    verification.last_error = error
    rows.update(verification, ["attempts", "last_error"])
    event_record(
        verification=verification,
        kind=Kind.ERROR,
        actor=Actor.TELEGRAM,
        error=error,
        telegram_error=telegram_error,
    )
    return verification, error


def verification_cancel(
    *,
    verification: PhoneVerification,
    actor: str = Actor.VISITOR,
    staff_user: Any = None,
    reason: str = "",
) -> PhoneVerification:
    """Mark an active verification cancelled (the worker then calls ``auth.cancelCode``)."""
    with transaction.atomic():
        locked = _lock(verification.pk)
        if locked is None or not locked.is_active:
            return locked or verification
        verification = locked
        data = {"reason": reason} if reason else {}
        return _finish(
            verification,
            Status.CANCELLED,
            kind=Kind.CANCELLED,
            actor=actor,
            staff_user=staff_user,
            **data,
        )


@transaction.atomic
def verification_expire_if_due(
    *, verification_id: Any, now: datetime | None = None
) -> PhoneVerification | None:
    """Expire the verification if its deadline passed; the expired verification, else None."""
    now = now or timezone.now()
    verification = _lock(verification_id)
    if verification is None or not verification.is_active:
        return None
    if not verification.expires_at or verification.expires_at > now:
        return None
    return _finish(verification, Status.EXPIRED, kind=Kind.EXPIRED, actor=Actor.SYSTEM)


def verification_expire_all_due(*, now: datetime | None = None) -> list[PhoneVerification]:
    """Expire every active verification past its deadline; the ones expired."""
    now = now or timezone.now()
    due = PhoneVerification.objects.filter(
        status__in=PhoneVerification.ACTIVE_STATUSES, expires_at__lte=now
    ).values_list("pk", flat=True)
    expired = (verification_expire_if_due(verification_id=pk, now=now) for pk in list(due))
    return [verification for verification in expired if verification is not None]


def verification_fail_stuck_sends(*, now: datetime | None = None) -> list[PhoneVerification]:
    """Fail verifications still ``sending`` long after Telegram should have answered."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=2 * get_config()["REQUEST_TIMEOUT"])
    stuck = PhoneVerification.objects.filter(
        status=Status.SENDING, created_at__lte=cutoff
    ).values_list("pk", flat=True)
    failed = []
    for pk in list(stuck):
        with transaction.atomic():
            verification = _lock(pk)
            if verification is not None and verification.status == Status.SENDING:
                failed.append(
                    _finish(
                        verification,
                        Status.FAILED,
                        kind=Kind.FAILED,
                        actor=Actor.SYSTEM,
                        error=ErrorCode.TELEGRAM_UNAVAILABLE,
                        reason="no answer from the Telegram worker",
                    )
                )
    return failed


def verification_purge(*, before: datetime) -> int:
    """Delete finished verifications (and their events) created before ``before``."""
    deleted, _ = (
        PhoneVerification.objects.filter(created_at__lt=before)
        .exclude(status__in=PhoneVerification.ACTIVE_STATUSES)
        .delete()
    )
    return deleted


@transaction.atomic
def verification_review(
    *, verification: PhoneVerification, status: str, staff_user: Any, note: str | None = None
) -> PhoneVerification:
    """Record a staff review; ``note=None`` keeps the current note, ``""`` clears it."""
    verification = _lock(verification.pk) or verification
    verification.review_status = status
    verification.reviewed_by = staff_user
    verification.reviewed_at = timezone.now()
    if note is not None:
        verification.review_note = note
    verification.save()
    event_record(
        verification=verification,
        kind=Kind.REVIEWED,
        actor=Actor.STAFF,
        staff_user=staff_user,
        review=status,
        note=note,
    )
    return verification


# Sender accounts ------------------------------------------------------------------------------


def sender_account_save(*, result: LoginResult, is_sandbox: bool = False) -> SenderAccount:
    """Store (or refresh) a signed-in sender account."""
    account, _ = SenderAccount.objects.update_or_create(
        phone_number=result.phone_number,
        defaults={
            "session": result.session,
            "telegram_user_id": result.user_id,
            "display_name": result.display_name,
            "is_active": True,
            "is_sandbox": is_sandbox,
            "last_error": "",
        },
    )
    return account


def sender_account_leases_renew(
    *, owner: str, used: dict[int, datetime] | None = None
) -> list[SenderAccount]:
    """Take or renew the leases ``owner`` can hold; the accounts it holds afterwards.

    ``used`` records when the worker last sent from each account (kept off the hot path).
    """
    now = timezone.now()
    until = now + timedelta(seconds=get_config()["LEASE_SECONDS"])
    with transaction.atomic():
        SenderAccount.objects.filter(lease_owner=owner, is_active=True).update(
            lease_expires_at=until
        )
        for account_id, moment in (used or {}).items():
            SenderAccount.objects.filter(pk=account_id).update(last_used_at=moment)
    lapsed = Q(lease_expires_at__isnull=True) | Q(lease_expires_at__lte=now) | Q(lease_owner="")
    free = (
        SenderAccount.objects.filter(is_active=True)
        .exclude(session="")
        .filter(lapsed)
        .exclude(lease_owner=owner)
    )
    for account in free.values_list("pk", flat=True):
        # A conditional update: two workers racing for one account cannot both win.
        SenderAccount.objects.filter(pk=account).filter(lapsed).update(
            lease_owner=owner, lease_expires_at=until
        )
    return list(
        SenderAccount.objects.filter(
            lease_owner=owner, is_active=True, lease_expires_at=until
        ).exclude(session="")
    )


def sender_account_release(*, owner: str, account_id: int | None = None, error: str = "") -> None:
    accounts = SenderAccount.objects.filter(lease_owner=owner)
    if account_id is not None:
        accounts = accounts.filter(pk=account_id)
    changes: dict[str, Any] = {"lease_owner": "", "lease_expires_at": None}
    if error:
        changes["last_error"] = error
    accounts.update(**changes)


def sender_account_release_sandbox() -> None:
    """Free the leases of embedded-sandbox accounts (they only serve one process)."""
    SenderAccount.objects.filter(is_sandbox=True).update(lease_owner="", lease_expires_at=None)


def sender_account_mark_dead(*, account_id: int, error: str) -> None:
    """A session Telegram no longer accepts: stop using it until staff reconnect it."""
    SenderAccount.objects.filter(pk=account_id).update(
        is_active=False, last_error=error, lease_owner="", lease_expires_at=None
    )


def sender_account_mark_flooded(*, account_id: int, seconds: int) -> None:
    """An account-level flood wait: the account sends nothing until it ends."""
    SenderAccount.objects.filter(pk=account_id).update(
        flood_until=timezone.now() + timedelta(seconds=seconds),
        last_error=f"FLOOD_WAIT_{seconds}",
    )


@transaction.atomic
def verification_failover(
    *, verification_id: Any, flooded_account_id: int
) -> PhoneVerification | None:
    """Move a verification still ``sending`` to another connected sender account.

    Used when its account answered FLOOD_WAIT before any code went out. None when it ended
    meanwhile, or when no other sender can take it.
    """
    verification = _lock(verification_id)
    if verification is None or verification.status != Status.SENDING:
        return None
    other = sender_account_pick(exclude=flooded_account_id)
    if other is None:
        return None
    verification.sender_account = other
    verification.save(update_fields=["sender_account", "updated_at"])
    event_record(
        verification=verification,
        kind=Kind.ERROR,
        actor=Actor.TELEGRAM,
        error=ErrorCode.FLOOD_WAIT,
        sender_account=flooded_account_id,
        failover_to=other.pk,
    )
    return verification


# The Gateway API transport ---------------------------------------------------------------------


def _transports() -> list[str]:
    """The configured transports that can be used now, in order."""
    config = get_config()
    gateway = bool(config["TELEGRAM_GATEWAY_TOKEN"] or config["EMBEDDED_GATEWAY_SANDBOX"])
    usable = {Transport.SENDER: True, Transport.GATEWAY: gateway}
    return [name for name in config["TRANSPORTS"] if usable.get(name)] or [Transport.SENDER]


def _transport_first() -> str:
    return _transports()[0]


def _transport_after(transport: str) -> str | None:
    """The transport a send falls through to when ``transport`` cannot do it."""
    order = _transports()
    index = order.index(transport) if transport in order else len(order)
    return order[index + 1] if index + 1 < len(order) else None


@transaction.atomic
def verification_transport_fall_through(
    *,
    verification_id: Any,
    transport: str,
    error: ErrorCode,
    telegram_error: str = "",
    cost: dict[str, Any] | None = None,
) -> PhoneVerification | None:
    """Move a verification still ``sending`` on ``transport`` to the next transport, after
    ``transport`` could not send (``error``; ``cost``: what it was billed all the same). None
    when it ended or moved meanwhile, or no next transport can take it.

    The row is locked and must still be on ``transport``: of two handlers that fall through
    at once, one moves it and the other gets None, so the next transport sends one code.
    """
    verification = _lock(verification_id)
    if (
        verification is None
        or verification.status != Status.SENDING
        or verification.transport != transport
    ):
        return None
    following = _transport_after(verification.transport)
    if following is None:
        return None
    account = None
    if following == Transport.SENDER:
        account = sender_account_pick()
        if account is None:
            return None
    previous = verification.transport
    verification.transport = following
    verification.sender_account = account
    rows.update(verification, ["transport", "sender_account"])
    event_record(
        verification=verification,
        kind=Kind.ERROR,
        actor=Actor.TELEGRAM,
        error=error,
        telegram_error=telegram_error,
        transport=previous,
        failover_to=following,
        **(cost or {}),
    )
    return verification


class UnknownRequest(Exception):
    """A delivery report names a Gateway request no verification made."""


@transaction.atomic
def verification_delivery_report(
    *, request_id: str, status: str, updated_at: int | None = None, **details: Any
) -> tuple[PhoneVerification, bool]:
    """Record a Gateway delivery report; returns the verification and whether its ``delivery``
    changed. Every report is kept as an event; reports about an earlier message of the
    verification (before a resend), or arriving out of order, leave ``delivery`` as it is."""
    found = (
        PhoneVerification.objects.filter(gateway_request_id=request_id)
        .values_list("pk", flat=True)
        .first()
    )
    if found is None:
        found = (
            VerificationEvent.objects.filter(data__request_id=request_id)
            .values_list("verification_id", flat=True)
            .first()
        )
    verification = _lock(found) if found is not None else None
    if verification is None:
        raise UnknownRequest(request_id)
    current = verification.gateway_request_id == request_id
    changed = current and DELIVERY_RANK.get(status, 0) > DELIVERY_RANK.get(verification.delivery, 0)
    if changed:
        verification.delivery = status
        rows.update(verification, ["delivery"])
    event_record(
        verification=verification,
        kind=Kind.DELIVERY,
        actor=Actor.TELEGRAM,
        request_id=request_id,
        status=status,
        updated_at=updated_at,
        **details,
    )
    return verification, changed
