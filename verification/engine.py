"""The verification use cases, for every interface: start, resend, submit a code, cancel, expire.

The WebSocket consumer, the admin and the Telegram worker all call these. Each does its database
work as one step (one transaction, on :mod:`verification.db`'s threads), hands Telegram work to
the worker holding the verification's sender account, and tells every tab of the owning
browser session through :func:`push`.

A request handed to a worker carries an id and a deadline. The worker answers every request by
its deadline, and gives up on it in Telethon when time runs out, so a late code is never sent.
:class:`Watchdogs` covers the one case the worker cannot: a worker that died holding the request.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from . import passport, passport_services, services
from .db import db
from .dispatch import Request, hand_over, no_answer, push, reachable
from .errors import ErrorCode, VerificationError
from .forms import PhoneForm
from .frames import error_frame, frame
from .models import PhoneVerification

#: Seconds after a request's deadline before a tab concludes its worker died.
ANSWER_GRACE = 5.0


async def _dispatch(request: Request, **data: Any) -> Request | None:
    """Hand ``request`` over, or fail it at once (told to every tab) when no worker holds it."""
    if await hand_over(request, **data):
        return request
    await no_answer(request)
    return None


async def current(owner: str) -> PhoneVerification | None:
    """``owner``'s latest verification; one that is past its deadline is expired first."""
    if not owner:
        return None
    verification, expired_now = await db(services.verification_live)(owner=owner)
    if expired_now and verification is not None:
        # The other tabs learn it too.
        await push(owner, frame("expired", verification))
    return verification


async def active(owner: str) -> PhoneVerification:
    """``owner``'s active verification, or the error that says why there is none."""
    if not owner:
        raise VerificationError(ErrorCode.NO_ACTIVE_VERIFICATION)
    verification, expired_now = await db(services.verification_live)(owner=owner)
    if verification is None:
        raise VerificationError(ErrorCode.NO_ACTIVE_VERIFICATION)
    if expired_now:
        await push(owner, frame("expired", verification))
        raise VerificationError(ErrorCode.PHONE_CODE_EXPIRED)
    if not verification.is_active:
        raise VerificationError(ErrorCode.NO_ACTIVE_VERIFICATION)
    return verification


async def start(
    *,
    owner: str,
    user: Any,
    phone_number: str,
    region: str = "",
    ip_address: str | None = None,
    challenge: Any = None,
) -> Request | None:
    """A new verification for ``owner`` (an active one is cancelled); its code goes out.
    ``challenge`` is the page's answer to a challenge it was given, if any."""
    verification, cancelled = await db(services.verification_start)(
        owner=owner,
        user=user,
        phone_number=phone_number,
        region=region,
        ip_address=ip_address,
        challenge=challenge,
    )
    for previous in cancelled:
        await hand_over(Request.new("cancel", previous))
    await push(owner, frame("state", verification))
    return await _dispatch(Request.new("send", verification))


async def resend(*, owner: str) -> Request | None:
    """Deliver the code the next way; None when a resend is already in flight."""
    verification = await active(owner)
    if not reachable(verification):
        raise VerificationError(ErrorCode.TELEGRAM_UNAVAILABLE)
    try:
        verification = await db(services.verification_resend_request)(
            verification_id=verification.pk
        )
    except services.ResendInFlight:
        # Its answer reaches every tab.
        return None
    return await _dispatch(Request.new("resend", verification))


async def submit_code(*, owner: str, code: str) -> Request | None:
    """Have Telegram check ``code`` (already validated); the attempt counts when it is taken."""
    verification = await active(owner)
    if not reachable(verification):
        # Refused before the attempt is counted: nobody could judge the code now.
        raise VerificationError(ErrorCode.TELEGRAM_UNAVAILABLE)
    services.verification_attempt_check(verification=verification)
    return await _dispatch(Request.new("verify", verification), code=code)


async def cancel(*, owner: str) -> None:
    """Cancel ``owner``'s active verification."""
    verification = await active(owner)
    await announce_cancelled(await db(services.verification_cancel)(verification=verification))


async def announce_cancelled(verification: PhoneVerification) -> None:
    """After :func:`services.verification_cancel` (the visitor's or staff's): tell every tab,
    and have the worker call ``auth.cancelCode`` so the code already delivered is useless."""
    if verification.status != PhoneVerification.Status.CANCELLED:
        return
    await push(verification.owner, frame("cancelled", verification))
    await hand_over(Request.new("cancel", verification))


async def expire(verification_id: Any) -> PhoneVerification | None:
    """Expire a verification whose deadline passed, and tell its tabs."""
    expired = await db(services.verification_expire_if_due)(verification_id=verification_id)
    if expired is not None:
        await push(expired.owner, frame("expired", expired))
    return expired


# Telegram Passport ----------------------------------------------------------------------------


async def passport_start(*, owner: str, user: Any, ip_address: str | None = None) -> None:
    """Open a Passport request for ``owner`` (an active verification is cancelled); every tab
    gets a ``passport_request`` frame with the link and its QR code."""
    bot = passport.passport_bot()
    if bot is None:
        raise VerificationError(ErrorCode.PASSPORT_UNAVAILABLE)
    nonce = passport.nonce_new()
    verification, cancelled = await db(passport_services.verification_passport_start)(
        owner=owner, user=user, nonce=nonce, ip_address=ip_address
    )
    for previous in cancelled:
        await hand_over(Request.new("cancel", previous))
    url = passport.request_url(bot_id=bot.bot_id, public_key=bot.public_key, nonce=nonce)
    request = frame("passport_request", verification, url=url, qr=passport.qr_svg(url))
    request["expires_in"] = request["verification"]["expires_in"]
    await push(owner, request)


async def passport_receive(shared: passport.SharedPassport) -> None:
    """What the bot received: decrypt and check it, finish the request its nonce names, and
    tell that visitor's tabs. Bad input is recorded (an event, or a log line when it names no
    request) and never raises."""
    bot = passport.passport_bot()
    if bot is None:
        return
    reject = db(passport_services.verification_passport_reject)
    try:
        nonce = passport.credentials_nonce(passport.credentials_decrypt(bot.private_key, shared))
    except passport.PassportRejected as exc:
        await reject(verification=None, reason=exc.reason, detail=exc.detail)
        return
    try:
        verification = await db(passport_services.verification_passport_received)(
            nonce=nonce, telegram_user_id=shared.user_id
        )
    except passport_services.PassportRefused as refused:
        await reject(verification=refused.verification, reason=refused.reason)
        if refused.ended and refused.verification is not None:
            await push(refused.verification.owner, frame("expired", refused.verification))
        return
    await push(verification.owner, frame("state", verification))
    reason, phone_number = "", ""
    try:
        form = PhoneForm({"phone_number": "+" + passport.shared_phone(shared).lstrip("+")})
        if form.is_valid():
            phone_number = form.cleaned_data["phone_number"]
        else:
            reason = "PHONE_NOT_ACCEPTED"
    except passport.PassportRejected as exc:
        reason = exc.reason
    updated = await db(passport_services.verification_passport_result)(
        verification_id=verification.pk, phone_number=phone_number, reason=reason
    )
    if updated is None:
        return
    if reason:
        await push(updated.owner, error_frame(ErrorCode.PASSPORT_REJECTED, updated))
    else:
        await push(updated.owner, frame("verified", updated))


# Frames after which no request about that verification can still be answered.
ENDINGS = {"verified", "cancelled", "expired"}


class Watchdogs:
    """The requests one tab handed over, each waiting for its answer until its deadline."""

    def __init__(self) -> None:
        self._tasks: dict[str, tuple[str, asyncio.Task[None]]] = {}

    def expect(self, request: Request | None) -> None:
        if request is not None:
            task = asyncio.ensure_future(self._watch(request))
            self._tasks[request.id] = (str(request.verification.pk), task)

    async def _watch(self, request: Request) -> None:
        await asyncio.sleep(max(0.0, request.deadline - time.time()) + ANSWER_GRACE)
        self._tasks.pop(request.id, None)
        await no_answer(request)

    def answered(self, event: dict[str, Any]) -> None:
        """Stand down the watchdogs that a pushed frame answers."""
        data = event["frame"]
        if request_id := event.get("answers"):
            entry = self._tasks.pop(request_id, None)
            if entry is not None:
                entry[1].cancel()
        snapshot = data.get("verification")
        if snapshot and data["type"] in ENDINGS:
            for request_id, (verification_id, task) in list(self._tasks.items()):
                if verification_id == snapshot["id"]:
                    task.cancel()
                    del self._tasks[request_id]

    def close(self) -> None:
        for _, task in self._tasks.values():
            task.cancel()
        self._tasks.clear()
