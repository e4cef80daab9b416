"""How work and results travel: requests to whoever runs them, frames to every tab.

A :class:`Request` is Telegram work for one verification, with an id and a deadline. It goes to
the Telegram worker holding the verification's sender account (over the channel layer), or, for
a transport registered with :func:`run_locally`, to a task in this process. Results go to every
tab of the owning browser session through :func:`push`. The use cases in
:mod:`verification.engine`, the worker and the transports all travel this way.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from channels.layers import BaseChannelLayer, get_channel_layer

from . import services
from .app_settings import get_config
from .db import db
from .errors import ErrorCode, VerificationError
from .frames import error_frame, frame, group_name
from .gateway.base import GatewayError
from .models import PhoneVerification
from .selectors import verification_get
from .worker.client import worker_channel


def channel_layer() -> BaseChannelLayer:
    return get_channel_layer(get_config()["CHANNEL_LAYER"])


async def push(owner: str, data: dict[str, Any], *, answers: str = "") -> None:
    """Send a frame to every tab of ``owner``; ``answers`` names the request it answers."""
    event = {"type": "verification.frame", "frame": data, "answers": answers}
    await channel_layer().group_send(group_name(owner), event)


@dataclass(frozen=True)
class Request:
    """Telegram work handed to the worker holding a verification's sender account."""

    id: str
    kind: str
    verification: PhoneVerification
    deadline: float

    @classmethod
    def new(cls, kind: str, verification: PhoneVerification) -> Request:
        deadline = time.time() + get_config()["REQUEST_TIMEOUT"]
        return cls(secrets.token_hex(8), kind, verification, deadline)

    def message(self, **data: Any) -> dict[str, Any]:
        verification = self.verification
        return {
            "type": f"telegram.{self.kind}",
            "request": self.id,
            "deadline": self.deadline,
            "verification": str(verification.pk),
            "owner": verification.owner,
            "account": verification.sender_account_id,
            "phone_number": verification.phone_number,
            **data,
        }


def reachable(verification: PhoneVerification) -> bool:
    """Whether something can act on ``verification``'s requests now: the Gateway API (any
    process can call it), or the live worker holding its sender account."""
    return verification.transport in _local_runners or bool(worker_channel(verification))


#: Transports whose requests run in the process that makes them (no worker holds them), by
#: transport: the function that runs one request's message. Registered by the transport's
#: module when the app loads (``apps.py``).
_local_runners: dict[str, Callable[[dict[str, Any]], None]] = {}


def run_locally(transport: str, runner: Callable[[dict[str, Any]], None]) -> None:
    """Have ``runner`` take the requests of ``transport``'s verifications in this process."""
    _local_runners[transport] = runner


async def hand_over(request: Request, **data: Any) -> bool:
    """Give ``request`` to the worker holding its account; False when no live worker does.

    A transport registered with :func:`run_locally` (the Gateway API: any process may call it,
    there is no lease to hold) runs its requests in this process instead.
    """
    runner = _local_runners.get(request.verification.transport)
    if runner is not None:
        runner(request.message(**data))
        return True
    channel = worker_channel(request.verification)
    if not channel:
        return False
    await channel_layer().send(channel, request.message(**data))
    return True


async def no_answer(request: Request) -> None:
    """No worker answered ``request`` in time (or none holds its account): record it and tell
    every tab. A send goes to the next transport instead, with a deadline of its own: the
    worker that did not answer gives up on a request at its deadline, so it sends no code."""
    verification = request.verification
    if request.kind == "send":
        unanswered = GatewayError(ErrorCode.TELEGRAM_UNAVAILABLE, telegram_error="NO_WORKER")
        retry = Request.new("send", verification)
        if await fall_through(retry.message(), unanswered, transport=verification.transport):
            return
        current = await db(verification_get)(verification_id=verification.pk)
        if current is not None and current.transport != verification.transport:
            # It moved to another transport meanwhile, which answers for it.
            return
    if request.kind == "verify":
        # The worker counts an attempt when it takes the code, so none was used up here.
        updated = await db(verification_get)(verification_id=verification.pk)
        if updated is not None and not updated.is_active:
            return
    elif request.kind in {"send", "resend"}:
        updated = await db(services.verification_send_failed)(
            verification_id=verification.pk, code=ErrorCode.TELEGRAM_UNAVAILABLE
        )
    else:
        return
    if updated is not None:
        await push(
            updated.owner, error_frame(ErrorCode.TELEGRAM_UNAVAILABLE, updated), answers=request.id
        )


async def fall_through(message: dict[str, Any], error: GatewayError, *, transport: str) -> bool:
    """A send ``transport`` could not do (``error``) goes to the next transport in
    ``TRANSPORTS``, under the same request id and deadline; True when another transport took
    it (or it was answered), False when none is left and the caller reports ``error``.

    A next transport that cannot take it either (no live worker holds its account) passes it
    on in turn (:func:`no_answer`). What ``error`` was billed (``error.cost``) goes on the
    event all the same.
    """
    moved = await db(services.verification_transport_fall_through)(
        verification_id=message["verification"],
        transport=transport,
        error=error.code,
        telegram_error=error.telegram_error,
        cost=error.cost,
    )
    if moved is None:
        return False
    request = Request(message["request"], "send", moved, message["deadline"])
    if not await hand_over(request):
        # No live worker holds the account it moved to: on to the next, or fail it.
        await no_answer(request)
    return True


# Checking a code, whatever the transport ----------------------------------------------------


async def attempt_take(message: dict[str, Any]) -> PhoneVerification | None:
    """Count a submitted code's attempt as a transport takes it.

    None when the code must not be judged, and the tabs were answered: the request was queued
    past its deadline (no attempt used), or no attempt can be taken now.
    """
    answers = message["request"]
    if time.time() >= message["deadline"]:
        current = await db(verification_get)(verification_id=message["verification"])
        if current is not None and current.is_active:
            await push(
                current.owner, error_frame(ErrorCode.TELEGRAM_UNAVAILABLE, current), answers=answers
            )
        return None
    try:
        return await db(services.verification_attempt_start)(
            verification_id=message["verification"]
        )
    except VerificationError as exc:
        current = await db(verification_get)(verification_id=message["verification"])
        await push(message["owner"], error_frame(exc.code, current), answers=answers)
        return None


async def attempt_answer(
    message: dict[str, Any],
    verification: PhoneVerification,
    error: GatewayError | None,
    *,
    on_exhausted: Callable[[], Awaitable[None]],
) -> None:
    """Record Telegram's verdict on a taken attempt and tell every tab; ``on_exhausted`` makes
    the code unusable when the last attempt was used up."""
    updated, shown = await db(services.verification_attempt_result)(
        verification_id=verification.pk,
        error=error.code if error else None,
        telegram_error=error.telegram_error if error else "",
    )
    if updated is None:
        return
    answers = message["request"]
    if shown is None:
        await push(updated.owner, frame("verified", updated), answers=answers)
        return
    if shown is ErrorCode.TOO_MANY_ATTEMPTS:
        await on_exhausted()
    retry_after = error.retry_after if error else None
    await push(updated.owner, error_frame(shown, updated, retry_after=retry_after), answers=answers)
