"""Writes for Telegram Passport: the request, what the bot received, and the bot's lease.

Each function is synchronous and transactional, like :mod:`verification.services`, whose state
machine, events and signals it shares: a number shared through Passport ends ``verified`` with
``method = "passport"`` and fires the same ``verification_verified`` signal.
"""

from __future__ import annotations

import hashlib
import logging
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from . import rows
from .addresses import address_bucket
from .app_settings import get_config
from .errors import ErrorCode
from .models import PassportBot, PhoneVerification, VerificationEvent
from .services import (
    _finish,
    _lock,
    event_record,
    race_retried,
    verification_replace,
)

logger = logging.getLogger("verification.passport")

Status = PhoneVerification.Status
Kind = VerificationEvent.Kind
Actor = VerificationEvent.Actor


def verification_passport_start(
    *, owner: str, user: Any, nonce: str, ip_address: str | None = None
) -> tuple[PhoneVerification, list[PhoneVerification]]:
    """A Passport request for ``owner``, waiting for the visitor's Telegram app; returns it
    and the active verifications it cancelled (one active verification per owner, as for
    codes). ``nonce`` goes into the request's link and is accepted once."""
    return race_retried(
        lambda: _passport_start(owner=owner, user=user, nonce=nonce, ip_address=ip_address)
    )


@transaction.atomic
def _passport_start(
    *, owner: str, user: Any, nonce: str, ip_address: str | None
) -> tuple[PhoneVerification, list[PhoneVerification]]:
    now = timezone.now()
    return verification_replace(
        PhoneVerification(
            owner=owner,
            user=user,
            phone_number="",
            method=PhoneVerification.Method.PASSPORT,
            passport_nonce=nonce,
            status=Status.WAITING,
            expires_at=now + timedelta(seconds=get_config()["PASSPORT_EXPIRES_AFTER"]),
            ip_address=ip_address,
        ),
        method="passport",
        ip=address_bucket(ip_address),
    )


def _by_nonce(nonce: str) -> PhoneVerification | None:
    pk = PhoneVerification.objects.filter(passport_nonce=nonce).values_list("pk", flat=True).first()
    return _lock(pk) if pk is not None else None


@transaction.atomic
def verification_passport_received(
    *, nonce: str, telegram_user_id: int | None
) -> PhoneVerification:
    """Claim the waiting request ``nonce`` names (status ``received``).

    Raises :class:`PassportRefused` when no request matches: the nonce is unknown, or its
    request was already answered or has ended (expired, cancelled).
    """
    verification = _by_nonce(nonce)
    if verification is None:
        raise PassportRefused("NONCE_UNKNOWN")
    if verification.status != Status.WAITING:
        raise PassportRefused("NONCE_REUSED", verification)
    if verification.expires_at is not None and verification.expires_at <= timezone.now():
        _finish(
            verification,
            Status.EXPIRED,
            kind=Kind.EXPIRED,
            actor=Actor.SYSTEM,
            reason="passport data arrived after the request expired",
        )
        raise PassportRefused("REQUEST_EXPIRED", verification, ended=True)
    verification.status = Status.RECEIVED
    rows.update(verification, ["status"])
    event_record(
        verification=verification,
        kind=Kind.PASSPORT_RECEIVED,
        actor=Actor.TELEGRAM,
        telegram_user_id=telegram_user_id,
    )
    return verification


@transaction.atomic
def verification_passport_result(
    *, verification_id: Any, phone_number: str = "", reason: str = ""
) -> PhoneVerification | None:
    """Finish a ``received`` verification: verified with ``phone_number`` (E.164), or failed
    because of ``reason``. None when it ended meanwhile."""
    verification = _lock(verification_id)
    if verification is None or verification.status != Status.RECEIVED:
        return None
    if reason:
        return _finish(
            verification,
            Status.FAILED,
            kind=Kind.PASSPORT_REJECTED,
            actor=Actor.TELEGRAM,
            error=ErrorCode.PASSPORT_REJECTED,
            reason=reason,
        )
    verification.phone_number = phone_number
    rows.update(verification, ["phone_number"])
    return _finish(verification, Status.VERIFIED, kind=Kind.VERIFIED, actor=Actor.TELEGRAM)


def verification_passport_reject(
    *, verification: PhoneVerification | None, reason: str, detail: str = ""
) -> None:
    """Record data that matched no usable request: an event on the verification it names,
    or a logged rejection when it names none. The verification itself is left as it is."""
    if verification is None:
        logger.warning("Telegram Passport data rejected: %s %s", reason, detail)
        return
    event_record(
        verification=verification,
        kind=Kind.PASSPORT_REJECTED,
        actor=Actor.TELEGRAM,
        reason=reason,
        detail=detail,
    )


class PassportRefused(Exception):
    """Passport data that cannot complete a request; ``verification`` is the one it named."""

    def __init__(
        self, reason: str, verification: PhoneVerification | None = None, *, ended: bool = False
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.verification = verification
        #: The refusal ended the verification (every tab must be told).
        self.ended = ended


# The bot's lease -------------------------------------------------------------------------------


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def passport_bot_lease(*, owner: str, token: str, bot_id: int) -> PassportBot | None:
    """Take or renew the lease on the bot with ``token``; the bot when ``owner`` holds it.

    A conditional update, like sender accounts': two workers racing for the bot cannot both
    win, and a worker takes it over only after the holder's lease lapsed.
    """
    now = timezone.now()
    until = now + timedelta(seconds=get_config()["LEASE_SECONDS"])
    digest = token_digest(token)
    PassportBot.objects.get_or_create(token_digest=digest, defaults={"bot_id": bot_id})
    free = Q(lease_owner=owner) | Q(lease_owner="") | Q(lease_expires_at__lte=now)
    taken = (
        PassportBot.objects.filter(token_digest=digest)
        .filter(free)
        .update(lease_owner=owner, lease_expires_at=until)
    )
    return PassportBot.objects.filter(token_digest=digest).first() if taken else None


def passport_bot_signed_in(*, bot_pk: int, session: str, error: str = "") -> None:
    """Keep the bot's session after a sign-in (or why it failed)."""
    changes: dict[str, Any] = {"last_error": error}
    if not error:
        changes.update(session=session, signed_in_at=timezone.now())
    bot = PassportBot.objects.get(pk=bot_pk)
    for name, value in changes.items():
        setattr(bot, name, value)
    bot.save(update_fields=list(changes))


def passport_bot_release(*, owner: str, now: datetime | None = None) -> None:
    PassportBot.objects.filter(lease_owner=owner).update(lease_owner="", lease_expires_at=None)
