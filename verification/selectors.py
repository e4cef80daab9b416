"""Reads: what the consumer, the worker and the admin need to know."""

from __future__ import annotations

import hashlib
import itertools
import math
from datetime import date, datetime
from typing import Any

from django.db.models import Q, QuerySet
from django.utils import timezone

from . import rows
from .app_settings import get_config
from .forms import format_phone_number
from .models import PassportBot, PhoneVerification, SenderAccount, VerificationEvent


def _seconds_until(moment: datetime | None, now: datetime) -> int | None:
    if moment is None:
        return None
    return max(0, math.ceil((moment - now).total_seconds()))


# The verification's columns in model order (Model.from_db expects that order), and the two
# columns of its sender account that route requests to the worker holding it.
_COLUMNS = [field.attname for field in PhoneVerification._meta.concrete_fields]
_PUBLIC_COLUMNS = [name for name in _COLUMNS if name != "phone_code_hash"]
_SENDER_COLUMNS = ["sender_account__lease_owner", "sender_account__lease_expires_at"]
_pk = PhoneVerification._meta.pk
_owner = PhoneVerification._meta.get_field("owner")

_current = rows.Read(
    lambda owner: (
        PhoneVerification.objects.filter(owner=owner)
        .order_by("-created_at")
        .values_list(*_PUBLIC_COLUMNS, *_SENDER_COLUMNS)[:1]
    ),
    [_owner],
)
_by_pk = rows.Read(
    lambda pk: PhoneVerification.objects.filter(pk=pk).values_list(*_COLUMNS, *_SENDER_COLUMNS),
    [_pk],
)
_locked = rows.Read(
    lambda pk: (
        PhoneVerification.objects.select_for_update(of=("self",))
        .filter(pk=pk)
        .values_list(*_COLUMNS, *_SENDER_COLUMNS)
    ),
    [_pk],
)
_active_locked = rows.Read(
    lambda owner: (
        PhoneVerification.objects.select_for_update(of=("self",))
        .filter(owner=owner, status__in=PhoneVerification.ACTIVE_STATUSES)
        .values_list(*_COLUMNS, *_SENDER_COLUMNS)
    ),
    [_owner],
)


def _verification(row: tuple[Any, ...], columns: list[str]) -> PhoneVerification:
    """A verification from a row, with the routing part of its sender account attached."""
    verification = rows.instance(PhoneVerification, columns, row[: len(columns)])
    lease_owner, lease_expires_at = row[len(columns) :]
    account = None
    if verification.sender_account_id is not None:
        account = rows.instance(
            SenderAccount,
            ["id", "lease_owner", "lease_expires_at"],
            [verification.sender_account_id, lease_owner, lease_expires_at],
        )
    PhoneVerification.sender_account.field.set_cached_value(verification, account)
    return verification


def verification_current(*, owner: str) -> PhoneVerification | None:
    """The owner's most recent verification, if any (without its secret)."""
    found = _current.rows(owner)
    return _verification(found[0], _PUBLIC_COLUMNS) if found else None


def verification_get(*, verification_id: Any) -> PhoneVerification | None:
    found = _by_pk.rows(verification_id)
    return _verification(found[0], _COLUMNS) if found else None


def verification_lock(*, verification_id: Any) -> PhoneVerification | None:
    """Lock a verification's row for the current transaction; None if it is gone."""
    found = _locked.rows(verification_id)
    return _verification(found[0], _COLUMNS) if found else None


def verification_lock_active(*, owner: str) -> list[PhoneVerification]:
    """Lock the owner's active verifications for the current transaction."""
    return [_verification(row, _COLUMNS) for row in _active_locked.rows(owner)]


def verification_snapshot(
    verification: PhoneVerification, *, now: datetime | None = None
) -> dict[str, Any]:
    """The protocol v1 snapshot of a verification: what a browser may see, nothing secret."""
    now = now or timezone.now()
    code: dict[str, Any] | None = None
    if verification.code_type:
        code = {"type": verification.code_type, "length": verification.code_length}
        for name in ("pattern", "prefix", "url", "beginning"):
            value = getattr(verification, f"code_{name}")
            if value:
                code[name] = value
    active = verification.status == PhoneVerification.Status.CODE_SENT
    next_type = verification.next_type or None
    resend_in = None
    if active and next_type:
        resend_in = _seconds_until(verification.resend_at, now) or 0
    max_attempts = get_config()["MAX_ATTEMPTS"]
    return {
        "id": str(verification.pk),
        "phone_number": format_phone_number(verification.phone_number),
        "status": verification.status,
        "code": code,
        "next_type": next_type,
        "resend_in": resend_in,
        "expires_in": _seconds_until(verification.expires_at, now)
        if verification.is_active
        else None,
        "attempts_left": max(0, max_attempts - verification.attempts),
        "method": verification.method,
        "error": verification.last_error or None,
        "transport": verification.transport,
        "delivery": verification.delivery or None,
    }


_rotation = itertools.count()


def _sendable(now: datetime) -> QuerySet[SenderAccount]:
    return (
        SenderAccount.objects.filter(is_active=True, lease_expires_at__gt=now)
        .exclude(session="")
        .exclude(lease_owner="")
    )


_pickable = rows.Read(
    lambda now: (
        _sendable(now)
        .filter(Q(flood_until__isnull=True) | Q(flood_until__lte=now))
        .order_by("pk")
        .values_list("id", "lease_owner", "lease_expires_at")
    ),
    [SenderAccount._meta.get_field("lease_expires_at")],
)


def sender_account_pick(
    *, now: datetime | None = None, exclude: int | None = None
) -> SenderAccount | None:
    """A connected sender account held by a live worker and not flood-waiting.

    Accounts take turns (round robin in this process), so picking one writes nothing.
    """
    now = now or timezone.now()
    candidates = [row for row in _pickable.rows(now) if row[0] != exclude]
    if not candidates:
        return None
    chosen = candidates[next(_rotation) % len(candidates)]
    return rows.instance(SenderAccount, ["id", "lease_owner", "lease_expires_at"], chosen)


def sender_account_flooded_until(*, now: datetime | None = None) -> datetime | None:
    """When the first flood-waiting connected sender is free again, if any is waiting."""
    now = now or timezone.now()
    return (
        _sendable(now)
        .filter(flood_until__gt=now)
        .order_by("flood_until")
        .values_list("flood_until", flat=True)
        .first()
    )


def sender_account_session(*, account_id: int) -> str | None:
    """The saved Telegram session of sender account ``account_id``; None if it is gone."""
    return SenderAccount.objects.filter(pk=account_id).values_list("session", flat=True).first()


def passport_bot_error(*, token: str) -> str:
    """Why the Passport bot with ``token`` last failed to sign in ("" if it did not fail)."""
    digest = hashlib.sha256(token.encode()).hexdigest()
    found = PassportBot.objects.filter(token_digest=digest).values_list("last_error", flat=True)
    return found.first() or ""


def passport_requests_waiting(*, now: datetime | None = None) -> list[PhoneVerification]:
    """Telegram Passport requests still waiting for a visitor's app, newest first."""
    return list(
        PhoneVerification.objects.filter(
            method=PhoneVerification.Method.PASSPORT,
            status=PhoneVerification.Status.WAITING,
            expires_at__gt=now or timezone.now(),
        )
        .exclude(passport_nonce=None)
        .order_by("-created_at")
        .only("id", "passport_nonce", "expires_at", "created_at")
    )


def sender_account_exists() -> bool:
    return SenderAccount.objects.filter(is_active=True).exclude(session="").exists()


def verification_summary(*, since: datetime) -> dict[str, Any]:
    """Conversion figures for verifications started since ``since`` (for the admin)."""
    rows = list(
        PhoneVerification.objects.filter(created_at__gte=since).values(
            "status", "method", "transport", "code_type", "last_error", "created_at", "finished_at"
        )
    )
    started = len(rows)
    by_status = dict.fromkeys(PhoneVerification.Status.values, 0)
    by_type: dict[str, list[int]] = {}
    by_method = {method: [0, 0] for method in PhoneVerification.Method.values}
    # Only code verifications go out through a transport (Passport has none).
    by_transport = {transport: [0, 0] for transport in PhoneVerification.Transport.values}
    errors: dict[str, int] = {}
    durations = []
    for row in rows:
        by_status[row["status"]] += 1
        verified = row["status"] == PhoneVerification.Status.VERIFIED
        counts = by_type.setdefault(row["code_type"] or "—", [0, 0])
        counts[0] += 1
        counts[1] += verified
        by_method[row["method"]][0] += 1
        by_method[row["method"]][1] += verified
        if row["method"] == PhoneVerification.Method.CODE:
            by_transport[row["transport"]][0] += 1
            by_transport[row["transport"]][1] += verified
        ended_badly = row["status"] in (
            PhoneVerification.Status.FAILED,
            PhoneVerification.Status.EXPIRED,
        )
        if row["last_error"] and ended_badly:
            errors[row["last_error"]] = errors.get(row["last_error"], 0) + 1
        if verified and row["finished_at"]:
            durations.append((row["finished_at"] - row["created_at"]).total_seconds())
    durations.sort()
    spend = gateway_spend_by_day(since=since)
    return {
        "started": started,
        "by_status": by_status,
        "conversion": by_status[PhoneVerification.Status.VERIFIED] / started if started else None,
        "median_seconds_to_verify": durations[len(durations) // 2] if durations else None,
        "by_code_type": sorted(
            (
                {"code_type": code_type, "started": total, "verified": done}
                for code_type, (total, done) in by_type.items()
            ),
            key=lambda item: -item["started"],
        ),
        # Every method, in the model's order, so a method nobody used still shows its zero.
        "by_method": [
            {
                "method": method,
                "started": total,
                "verified": done,
                "conversion": done / total if total else None,
            }
            for method, (total, done) in by_method.items()
        ],
        "by_transport": [
            {
                "transport": transport,
                "started": total,
                "verified": done,
                "conversion": done / total if total else None,
            }
            for transport, (total, done) in by_transport.items()
        ],
        # Each one billed by Telegram: first sends and resends alike.
        "gateway_messages": sum(day["messages"] for day in spend),
        "gateway_spend": sum(day["cost"] for day in spend),
        "gateway_spend_by_day": spend,
        "errors": sorted(errors.items(), key=lambda item: -item[1]),
    }


_GATEWAY_SENDS = [VerificationEvent.Kind.CODE_SENT, VerificationEvent.Kind.CODE_RESENT]
# A send that failed or fell through to another transport after a billed ``checkSendAbility``
# carries that check's cost on its event.
_GATEWAY_CHARGES = [VerificationEvent.Kind.ERROR, VerificationEvent.Kind.FAILED]


def gateway_spend_by_day(*, since: datetime) -> list[dict[str, Any]]:
    """Gateway API messages sent since ``since`` and what was spent (the ``request_cost`` of
    their events, and of billed checks no message followed), per local day, oldest first."""
    days: dict[date, dict[str, Any]] = {}
    events = VerificationEvent.objects.filter(created_at__gte=since).filter(
        Q(kind__in=_GATEWAY_SENDS, data__has_key="request_id")
        | Q(kind__in=_GATEWAY_CHARGES, data__has_key="request_cost")
    )
    for created_at, kind, data in events.values_list("created_at", "kind", "data"):
        day = timezone.localdate(created_at)
        row = days.setdefault(day, {"day": day, "messages": 0, "cost": 0.0})
        if kind in _GATEWAY_SENDS:
            row["messages"] += 1
        row["cost"] += float(data.get("request_cost") or 0)
    return [days[day] for day in sorted(days)]


def gateway_balance_last() -> dict[str, Any] | None:
    """The Gateway account's balance as last reported (``remaining_balance`` of the newest event
    that has one) and when: ``{"balance": float, "at": datetime}``, or None before any."""
    events = (
        VerificationEvent.objects.filter(
            kind__in=[*_GATEWAY_SENDS, *_GATEWAY_CHARGES, VerificationEvent.Kind.DELIVERY],
            data__has_key="remaining_balance",
        )
        .order_by("-created_at", "-id")
        .values_list("created_at", "data")
    )
    # A status may carry the key with no value; looking further back than a few is not worth it.
    for created_at, data in events[:20]:
        if data.get("remaining_balance") is not None:
            return {"balance": float(data["remaining_balance"]), "at": created_at}
    return None


def gateway_balance_low() -> dict[str, Any] | None:
    """The last reported Gateway balance (as :func:`gateway_balance_last`) when it is below
    ``TELEGRAM_GATEWAY_LOW_BALANCE``, with that threshold as ``"threshold"``; else None."""
    threshold = get_config()["TELEGRAM_GATEWAY_LOW_BALANCE"]
    if not threshold:
        return None
    last = gateway_balance_last()
    if last is None or last["balance"] >= threshold:
        return None
    return {**last, "threshold": threshold}
