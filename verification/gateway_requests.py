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
from .gateway.base import GatewayError
from .gateway.telegram_gateway import (
    FALLS_THROUGH,
    GatewayCodes,
    OutcomeUnknown,
    TelegramGatewayAPI,
)
from .models import PhoneVerification
from .selectors import verification_get
from .worker.locks import KeyedLock

logger = logging.getLogger("verification.gateway")

Status = PhoneVerification.Status
GATEWAY = PhoneVerification.Transport.GATEWAY

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
        call.close()
        raise _too_late()
    try:
        async with asyncio.timeout(left):
            return await call
    except TimeoutError:
        raise _too_late() from None


def _too_late() -> GatewayError:
    return OutcomeUnknown(ErrorCode.TELEGRAM_UNAVAILABLE, telegram_error="REQUEST_TIMEOUT")


def codes() -> GatewayCodes:
    """This loop's Gateway API as a :class:`CodeTransport`, with the app's settings."""
    config = get_config()
    return GatewayCodes(
        api(),
        code_length=config["TELEGRAM_GATEWAY_CODE_LENGTH"],
        ttl=config["TELEGRAM_GATEWAY_TTL"],
        callback_url=config["TELEGRAM_GATEWAY_CALLBACK_URL"],
        sender_username=config["TELEGRAM_GATEWAY_SENDER_USERNAME"],
        resend_timeout=config["TELEGRAM_GATEWAY_RESEND_TIMEOUT"],
    )


async def send(message: dict[str, Any]) -> None:
    current = await db(verification_get)(verification_id=message["verification"])
    if current is None or current.status != Status.SENDING or current.transport != GATEWAY:
        # Replaced, cancelled, or moved to another transport before its turn.
        return
    transport = codes()
    try:
        delivery = await _within_deadline(message, transport.send(message["phone_number"]))
    except GatewayError as exc:
        if exc.cost is None and transport.unspent_check is not None:
            # Given up after a billed check: no message used it, its cost is still spent.
            exc.cost = transport.unspent_check.cost
        falls_through = exc.code in FALLS_THROUGH and not isinstance(exc, OutcomeUnknown)
        if falls_through and await dispatch.fall_through(message, exc, transport=GATEWAY):
            return
        await _send_failed(message, exc)
        return
    updated = await db(services.verification_code_sent)(
        verification_id=message["verification"],
        sent=delivery.sent,
        gateway_request_id=delivery.handle,
        cost=delivery.cost,
    )
    if updated is None:
        # Cancelled while the message went out: withdraw it.
        await transport.cancel(message["phone_number"], delivery.handle)
        return
    await dispatch.push(updated.owner, frame("code_sent", updated), answers=message["request"])


async def _send_failed(message: dict[str, Any], exc: GatewayError) -> None:
    updated = await db(services.verification_send_failed)(
        verification_id=message["verification"],
        code=exc.code,
        retry_after=exc.retry_after,
        telegram_error=exc.telegram_error,
        cost=exc.cost,
    )
    if updated is not None:
        await dispatch.push(
            updated.owner,
            error_frame(exc.code, updated, retry_after=exc.retry_after),
            answers=message["request"],
        )


async def resend(message: dict[str, Any]) -> None:
    """A new message with a new code: the Gateway has no other way to deliver one. Only the
    newest code counts, as with Telegram's own resends: the previous message is revoked."""
    verification = await db(verification_get)(verification_id=message["verification"])
    if verification is None or verification.status != Status.CODE_SENT:
        await db(services.verification_resend_done)(verification_id=message["verification"])
        return
    transport = codes()
    try:
        delivery = await _within_deadline(
            message, transport.resend(verification.phone_number, verification.gateway_request_id)
        )
    except GatewayError as exc:
        await _send_failed(message, exc)
        return
    updated = await db(services.verification_code_sent)(
        verification_id=verification.pk,
        sent=delivery.sent,
        resent=True,
        gateway_request_id=delivery.handle,
        cost=delivery.cost,
    )
    if updated is None:
        await transport.cancel(verification.phone_number, delivery.handle)
        return
    await dispatch.push(updated.owner, frame("code_sent", updated), answers=message["request"])


async def verify(message: dict[str, Any]) -> None:
    verification = await dispatch.attempt_take(message)
    if verification is None:
        return
    transport = codes()
    error: GatewayError | None = None
    try:
        await _within_deadline(
            message,
            transport.check(
                verification.phone_number, verification.gateway_request_id, message["code"]
            ),
        )
    except GatewayError as exc:
        error = exc

    async def exhausted() -> None:
        await transport.cancel(verification.phone_number, verification.gateway_request_id)

    await dispatch.attempt_answer(message, verification, error, on_exhausted=exhausted)


async def cancel(message: dict[str, Any]) -> None:
    verification = await db(verification_get)(verification_id=message["verification"])
    if verification is not None and verification.gateway_request_id:
        await codes().cancel(verification.phone_number, verification.gateway_request_id)


# A Gateway verification's requests run in the process that makes them (see the docstring).
dispatch.run_locally(GATEWAY, spawn)
