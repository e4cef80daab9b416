"""The Gateway API transport's side of the use cases: send, resend, check a code, cancel.

A Gateway verification has no sender account, so no worker holds it: :func:`verification.dispatch.
hand_over` gives its requests to :func:`spawn`, which runs each as a task in this process (any
process may call the Gateway). As in the worker, one request per browser session runs at a time,
every request is answered by its deadline, and every result reaches every tab through
:func:`verification.dispatch.push`.

The send asks ``checkSendAbility`` first: a number that cannot receive costs nothing more and
falls through to the next transport (or is told ``PHONE_NOT_ON_TELEGRAM``), and the check's
``request_id`` makes the ``sendVerificationMessage`` that follows free.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from typing import Any

from . import dispatch, services
from .app_settings import get_config
from .db import db
from .errors import ErrorCode
from .frames import error_frame, frame
from .gateway.base import GatewayError, SentCode
from .gateway.telegram_gateway import FALLS_THROUGH, VERIFICATION_ERRORS, TelegramGatewayAPI
from .models import PhoneVerification
from .selectors import verification_get
from .worker.locks import KeyedLock

logger = logging.getLogger("verification.gateway")

Status = PhoneVerification.Status

_TOO_LATE = GatewayError(ErrorCode.TELEGRAM_UNAVAILABLE, telegram_error="REQUEST_TIMEOUT")

# Per event loop: a client is bound to the loop it connected on.
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, TelegramGatewayAPI] = (
    weakref.WeakKeyDictionary()
)
_locks: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, KeyedLock] = (
    weakref.WeakKeyDictionary()
)
_tasks: set[asyncio.Task[None]] = set()


#: (URL, token) of the Gateway sandbox embedded in this process, set by the embedded runtime.
_embedded_sandbox: tuple[str, str] | None = None


def embedded_sandbox_set(address: tuple[str, str] | None) -> None:
    """Send this process's Gateway requests to an embedded sandbox at ``(URL, token)`` (None:
    back to ``TELEGRAM_GATEWAY_URL`` and ``TELEGRAM_GATEWAY_TOKEN``)."""
    global _embedded_sandbox
    _embedded_sandbox = address


def gateway_address() -> tuple[str, str]:
    """(URL, token) of the Gateway API: the embedded sandbox's while it runs, else the settings'."""
    if _embedded_sandbox is not None:
        return _embedded_sandbox
    config = get_config()
    return config["TELEGRAM_GATEWAY_URL"], config["TELEGRAM_GATEWAY_TOKEN"]


def api() -> TelegramGatewayAPI:
    """This loop's Gateway API client (made again when the address or token changes)."""
    loop = asyncio.get_running_loop()
    url, token = gateway_address()
    client = _clients.get(loop)
    if client is None or client.url != url.rstrip("/") + "/" or client.token != token:
        client = TelegramGatewayAPI(
            token=token, url=url, timeout=float(get_config()["REQUEST_TIMEOUT"])
        )
        _clients[loop] = client
    return client


def spawn(message: dict[str, Any]) -> None:
    """Run one request (an :meth:`dispatch.Request.message`) in the background."""
    task = asyncio.ensure_future(_run(message))
    _tasks.add(task)
    task.add_done_callback(_tasks.discard)


async def _run(message: dict[str, Any]) -> None:
    kind = message["type"].removeprefix("telegram.")
    handler = {"send": send, "resend": resend, "verify": verify, "cancel": cancel}[kind]
    locks = _locks.setdefault(asyncio.get_running_loop(), KeyedLock())
    async with locks(message.get("owner") or message["verification"]):
        try:
            await handler(message)
        except Exception:
            logger.exception("Gateway %s failed", kind)
            if kind in {"send", "resend"}:
                await _send_failed(message, GatewayError(ErrorCode.INTERNAL))


async def _within_deadline(message: dict[str, Any], call: Any) -> Any:
    left = message["deadline"] - time.time()
    if left <= 0:
        raise _TOO_LATE
    try:
        async with asyncio.timeout(left):
            return await call
    except TimeoutError:
        raise _TOO_LATE from None


def _sent_code(verification: PhoneVerification) -> SentCode:
    """How a Gateway message is shown: a code in the Telegram app, another message as next."""
    config = get_config()
    return SentCode(
        type="app",
        phone_code_hash="",
        length=config["TELEGRAM_GATEWAY_CODE_LENGTH"],
        next_type="app",
        timeout=config["TELEGRAM_GATEWAY_RESEND_TIMEOUT"],
    )


async def _send_message(message: dict[str, Any], *, ability_request_id: str = "") -> Any:
    config = get_config()
    return await _within_deadline(
        message,
        api().send_verification_message(
            message["phone_number"],
            request_id=ability_request_id,
            code_length=config["TELEGRAM_GATEWAY_CODE_LENGTH"],
            ttl=config["TELEGRAM_GATEWAY_TTL"],
            callback_url=config["TELEGRAM_GATEWAY_CALLBACK_URL"],
            sender_username=config["TELEGRAM_GATEWAY_SENDER_USERNAME"],
        ),
    )


async def send(message: dict[str, Any]) -> None:
    current = await db(verification_get)(verification_id=message["verification"])
    if current is None or current.status != Status.SENDING:
        return
    try:
        ability = await _within_deadline(message, api().check_send_ability(message["phone_number"]))
        status = await _send_message(message, ability_request_id=ability.request_id)
    except GatewayError as exc:
        if exc.code in FALLS_THROUGH and await _fall_through(message, exc):
            return
        await _send_failed(message, exc)
        return
    cost = status.cost
    # The check was billed and made the send free: the events show what this message cost.
    cost["request_cost"] = ability.request_cost + status.request_cost
    updated = await db(services.verification_code_sent)(
        verification_id=message["verification"],
        sent=_sent_code(current),
        gateway_request_id=status.request_id,
        cost=cost,
    )
    if updated is None:
        # Cancelled while the message went out: withdraw it.
        await _revoke_quietly(status.request_id)
        return
    await dispatch.push(updated.owner, frame("code_sent", updated), answers=message["request"])


async def _fall_through(message: dict[str, Any], exc: GatewayError) -> bool:
    """Hand a send the Gateway could not do to the next transport; True when it took it."""
    moved = await db(services.verification_transport_fall_through)(
        verification_id=message["verification"],
        error=exc.code,
        telegram_error=exc.telegram_error,
    )
    if moved is None:
        return False
    request = dispatch.Request(message["request"], "send", moved, message["deadline"])
    if await dispatch.hand_over(request):
        return True
    await dispatch.no_answer(request)
    return True


async def _send_failed(message: dict[str, Any], exc: GatewayError) -> None:
    updated = await db(services.verification_send_failed)(
        verification_id=message["verification"],
        code=exc.code,
        retry_after=exc.retry_after,
        telegram_error=exc.telegram_error,
    )
    if updated is not None:
        await dispatch.push(
            updated.owner,
            error_frame(exc.code, updated, retry_after=exc.retry_after),
            answers=message["request"],
        )


async def resend(message: dict[str, Any]) -> None:
    """A new message with a new code: the Gateway has no other way to deliver one."""
    verification = await db(verification_get)(verification_id=message["verification"])
    if verification is None or verification.status != Status.CODE_SENT:
        await db(services.verification_resend_done)(verification_id=message["verification"])
        return
    previous = verification.gateway_request_id
    try:
        status = await _send_message(message)
    except GatewayError as exc:
        await _send_failed(message, exc)
        return
    updated = await db(services.verification_code_sent)(
        verification_id=verification.pk,
        sent=_sent_code(verification),
        resent=True,
        gateway_request_id=status.request_id,
        cost=status.cost,
    )
    if updated is None:
        await _revoke_quietly(status.request_id)
        return
    if previous:
        # Only the newest code counts, as with Telegram's own resends.
        await _revoke_quietly(previous)
    await dispatch.push(updated.owner, frame("code_sent", updated), answers=message["request"])


async def verify(message: dict[str, Any]) -> None:
    verification = await dispatch.attempt_take(message)
    if verification is None:
        return
    error: GatewayError | None = None
    try:
        status = await _within_deadline(
            message,
            api().check_verification_status(verification.gateway_request_id, message["code"]),
        )
    except GatewayError as exc:
        error = exc
    else:
        verdict = status.verification_status or ""
        code = VERIFICATION_ERRORS.get(verdict, ErrorCode.PHONE_CODE_INVALID)
        if code is not None:
            error = GatewayError(code, telegram_error=verdict)

    async def exhausted() -> None:
        await _revoke_quietly(verification.gateway_request_id)

    await dispatch.attempt_answer(message, verification, error, on_exhausted=exhausted)


async def cancel(message: dict[str, Any]) -> None:
    verification = await db(verification_get)(verification_id=message["verification"])
    if verification is not None and verification.gateway_request_id:
        await _revoke_quietly(verification.gateway_request_id)


async def _revoke_quietly(request_id: str) -> None:
    try:
        await api().revoke_verification_message(request_id)
    except GatewayError as exc:
        # The verification is over either way; a message already read stays, unusable here.
        logger.info("revokeVerificationMessage: %s", exc.telegram_error)


# A Gateway verification's requests run in the process that makes them (see the docstring).
dispatch.run_locally(PhoneVerification.Transport.GATEWAY, spawn)
