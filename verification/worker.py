"""The Telegram worker: owns the Telethon clients and runs every Telegram call.

Consumers reach it through the channel layer. Each worker has its own channel and holds leases on
the sender accounts whose clients it runs, so an auth key is only ever used by one process; a
verification's requests go to the worker holding its sender account's lease. Results go back as
group events to every tab of the owning browser session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.db import database_sync_to_async
from channels.layers import BaseChannelLayer, get_channel_layer
from django.utils import timezone

from . import services
from .app_settings import get_config
from .errors import ErrorCode, VerificationError
from .frames import error_frame, frame, group_name
from .gateway import GatewayError, TelegramGateway, gateway_from_settings
from .gateway.base import AccountUnusable, PasswordNeeded
from .models import PhoneVerification
from .selectors import verification_get

logger = logging.getLogger("verification.worker")


def db(function: Callable[..., Any]) -> Callable[..., Awaitable[Any]]:
    """Run ORM work off the loop, in a pool thread.

    Not the thread-sensitive default: a sync view may be blocked on the worker (the admin's
    sign-in steps) while holding that one shared thread.
    """
    return database_sync_to_async(function, thread_sensitive=False)


#: Every worker listens here for the first step of a sender-account sign-in.
LOGIN_CHANNEL = "verification.logins"


def worker_channel(verification: PhoneVerification) -> str:
    """The channel of the live worker holding ``verification``'s sender account, or ""."""
    account = verification.sender_account
    if account is None or not account.lease_owner:
        return ""
    if account.lease_expires_at is None or account.lease_expires_at <= timezone.now():
        # Its worker stopped renewing: a message sent there would never be answered.
        return ""
    return account.lease_owner


async def worker_request(
    verification: PhoneVerification,
    kind: str,
    *,
    layer: BaseChannelLayer | None = None,
    **data: Any,
) -> bool:
    """Ask the worker holding ``verification``'s sender account to do ``kind``.

    Returns False when no live worker holds that account.
    """
    channel = worker_channel(verification)
    if not channel:
        return False
    layer = layer or get_channel_layer(get_config()["CHANNEL_LAYER"])
    await layer.send(
        channel,
        {"type": f"telegram.{kind}", "verification": str(verification.pk), **data},
    )
    return True


async def worker_login(
    action: str,
    login_id: str,
    *,
    worker: str = "",
    layer: BaseChannelLayer | None = None,
    **data: Any,
) -> dict[str, Any]:
    """One step of signing a sender account in, done by a Telegram worker.

    The first step (``send_code``) goes to any worker; later steps go to the ``worker`` named in
    the first answer, because it holds the half-signed-in client. Returns the worker's answer:
    ``{"step": "code" | "password" | "done" | "aborted", "worker": ...}`` or ``{"error": code}``.
    """
    config = get_config()
    layer = layer or get_channel_layer(config["CHANNEL_LAYER"])
    reply_channel = await layer.new_channel("verification.login-reply.")
    await layer.send(
        worker or LOGIN_CHANNEL,
        {
            "type": "telegram.login",
            "action": action,
            "login_id": login_id,
            "reply_channel": reply_channel,
            **data,
        },
    )
    try:
        async with asyncio.timeout(config["REQUEST_TIMEOUT"] + 5):
            return await layer.receive(reply_channel)
    except TimeoutError:
        return {"error": ErrorCode.TELEGRAM_UNAVAILABLE.value}


class TelegramWorker:
    def __init__(
        self,
        *,
        channel_layer: BaseChannelLayer | None = None,
        gateway: TelegramGateway | None = None,
        before_first_lease: Callable[[TelegramWorker], Awaitable[None]] | None = None,
    ) -> None:
        config = get_config()
        self.layer = channel_layer or get_channel_layer(config["CHANNEL_LAYER"])
        self.gateway = gateway or gateway_from_settings()
        self.lease_seconds: int = config["LEASE_SECONDS"]
        self.channel = ""
        self.ready = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._locks: dict[str, asyncio.Lock] = {}
        # Ids of the sender accounts whose leases (and clients) this worker holds.
        self.held: set[int] = set()
        self._lease_lock = asyncio.Lock()
        self._before_first_lease = before_first_lease

    async def run(self) -> None:
        """Serve until cancelled."""
        self.channel = await self.layer.new_channel("verification.worker.")
        lease_task = asyncio.create_task(self._lease_loop())
        login_task = asyncio.create_task(self._receive(LOGIN_CHANNEL))
        try:
            await self._receive(self.channel)
        finally:
            lease_task.cancel()
            login_task.cancel()
            for task in list(self._tasks):
                task.cancel()
            await asyncio.gather(lease_task, login_task, *self._tasks, return_exceptions=True)
            await self.gateway.close_all()
            await db(services.sender_account_release)(owner=self.channel)

    async def _receive(self, channel: str) -> None:
        while True:
            message = await self.layer.receive(channel)
            self._spawn(self._dispatch(message))

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    # Leases ---------------------------------------------------------------------------------

    async def refresh_leases(self) -> None:
        """Renew and take leases; open clients for new accounts, close lost ones."""
        async with self._lease_lock:
            await self._refresh_leases()

    async def _refresh_leases(self) -> None:
        held = await db(services.sender_account_leases_renew)(owner=self.channel)
        held_ids = {account.pk for account in held}
        for account_id in self.held - held_ids:
            await self.gateway.close(account_id)
        for account in held:
            if self.gateway.is_open(account.pk):
                continue
            try:
                await self.gateway.open(account.pk, account.session)
            except AccountUnusable as exc:
                logger.warning("Sender account %s cannot be used: %s", account, exc.telegram_error)
                await db(services.sender_account_mark_dead)(
                    account_id=account.pk, error=exc.telegram_error
                )
                held_ids.discard(account.pk)
            except GatewayError as exc:
                logger.warning("Sender account %s cannot connect: %s", account, exc.telegram_error)
                await db(services.sender_account_release)(
                    owner=self.channel, account_id=account.pk, error=exc.telegram_error
                )
                held_ids.discard(account.pk)
            else:
                logger.info("Sender account %s connected", account)
        self.held = held_ids

    async def _lease_loop(self) -> None:
        first = True
        while True:
            try:
                if first and self._before_first_lease is not None:
                    await self.refresh_leases()
                    await self._before_first_lease(self)
                await self.refresh_leases()
                await self.expire_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.exception("Refreshing sender-account leases failed")
            if first:
                first = False
                self.ready.set()
            await asyncio.sleep(max(1.0, self.lease_seconds / 3))

    async def expire_due(self) -> None:
        """Expire verifications nobody is watching and tell their tabs, if any."""
        for verification in await db(services.verification_expire_all_due)():
            await self._push(verification.owner, frame("expired", verification))
        # A send that no worker answered (its worker died holding the request) fails visibly.
        for verification in await db(services.verification_fail_stuck_sends)():
            await self._push(
                verification.owner, error_frame(ErrorCode.TELEGRAM_UNAVAILABLE, verification)
            )

    # Requests -------------------------------------------------------------------------------

    async def _dispatch(self, message: dict[str, Any]) -> None:
        if message.get("type") == "telegram.login":
            await self.handle_login(message)
            return
        handler = {
            "telegram.send": self.handle_send,
            "telegram.resend": self.handle_resend,
            "telegram.verify": self.handle_verify,
            "telegram.cancel": self.handle_cancel,
        }.get(message.get("type", ""))
        if handler is None:
            logger.warning("Unknown worker message %r", message.get("type"))
            return
        key = message["verification"]
        lock = self._locks.setdefault(key, asyncio.Lock())
        try:
            async with lock:
                await handler(message)
        except Exception:
            logger.exception("Worker failed on %s", message.get("type"))
            verification = await db(verification_get)(verification_id=key)
            if verification is not None:
                await self._push(
                    verification.owner,
                    error_frame(ErrorCode.INTERNAL, verification),
                    answers=message["type"].removeprefix("telegram."),
                )
        finally:
            if not lock.locked():
                self._locks.pop(key, None)

    async def _push(self, owner: str, data: dict[str, Any], *, answers: str = "") -> None:
        """Send a frame to every tab of ``owner``; ``answers`` names the request it answers."""
        event = {"type": "verification.frame", "frame": data, "answers": answers}
        await self.layer.group_send(group_name(owner), event)

    async def _load(self, verification_id: str) -> PhoneVerification | None:
        verification = await db(verification_get)(verification_id=verification_id)
        if verification is None or verification.sender_account_id is None:
            # Gone, or its sender account was deleted: nothing can be asked of Telegram.
            return None
        return verification

    async def _gateway_failed(self, verification: PhoneVerification, exc: GatewayError) -> None:
        account_id = verification.sender_account_id
        if isinstance(exc, AccountUnusable) and account_id is not None:
            await self.gateway.close(account_id)
            await db(services.sender_account_mark_dead)(
                account_id=account_id, error=exc.telegram_error
            )

    async def _send_failed(
        self, verification: PhoneVerification, exc: GatewayError, *, answers: str
    ) -> None:
        """Record a refused send or resend and tell the visitor's tabs."""
        await self._gateway_failed(verification, exc)
        updated = await db(services.verification_send_failed)(
            verification_id=verification.pk,
            code=exc.code,
            retry_after=exc.retry_after,
            telegram_error=exc.telegram_error,
        )
        if updated is not None:
            await self._push(
                updated.owner,
                error_frame(exc.code, updated, retry_after=exc.retry_after),
                answers=answers,
            )

    async def handle_send(self, message: dict[str, Any]) -> None:
        verification = await self._load(message["verification"])
        if verification is None or verification.status != PhoneVerification.Status.SENDING:
            return
        try:
            sent = await self.gateway.send_verify_code(
                verification.sender_account_id, verification.phone_number
            )
        except GatewayError as exc:
            await self._send_failed(verification, exc, answers="send")
            return
        updated = await db(services.verification_code_sent)(
            verification_id=verification.pk, sent=sent
        )
        if updated is None:
            # Cancelled while Telegram was sending: make that code useless too.
            await self._cancel_quietly(verification, sent.phone_code_hash)
            return
        await self._push(updated.owner, frame("code_sent", updated), answers="send")

    async def handle_resend(self, message: dict[str, Any]) -> None:
        verification = await self._load(message["verification"])
        if verification is None or verification.status != PhoneVerification.Status.CODE_SENT:
            return
        try:
            sent = await self.gateway.resend_code(
                verification.sender_account_id,
                verification.phone_number,
                verification.phone_code_hash,
            )
        except GatewayError as exc:
            await self._send_failed(verification, exc, answers="resend")
            return
        updated = await db(services.verification_code_sent)(
            verification_id=verification.pk, sent=sent, resent=True
        )
        if updated is not None:
            await self._push(updated.owner, frame("code_sent", updated), answers="resend")

    async def handle_verify(self, message: dict[str, Any]) -> None:
        verification = await self._load(message["verification"])
        if verification is None:
            return
        try:
            verification = await db(services.verification_attempt_start)(
                verification_id=verification.pk
            )
        except VerificationError as exc:
            await self._push(
                verification.owner, error_frame(exc.code, verification), answers="verify"
            )
            return
        error: GatewayError | None = None
        try:
            await self.gateway.verify_phone(
                verification.sender_account_id,
                verification.phone_number,
                verification.phone_code_hash,
                message["code"],
            )
        except GatewayError as exc:
            await self._gateway_failed(verification, exc)
            error = exc
        except Exception as exc:
            # Not Telegram's verdict on the code: the attempt is given back.
            logger.exception("Checking a code failed")
            error = GatewayError(ErrorCode.INTERNAL, telegram_error=type(exc).__name__)
        updated, shown = await db(services.verification_attempt_result)(
            verification_id=verification.pk,
            error=error.code if error else None,
            telegram_error=error.telegram_error if error else "",
        )
        if updated is None:
            return
        if shown is None:
            await self._push(updated.owner, frame("verified", updated), answers="verify")
            return
        if shown is ErrorCode.TOO_MANY_ATTEMPTS:
            await self._cancel_quietly(verification, verification.phone_code_hash)
        retry_after = error.retry_after if error else None
        await self._push(
            updated.owner, error_frame(shown, updated, retry_after=retry_after), answers="verify"
        )

    async def handle_login(self, message: dict[str, Any]) -> None:
        action = message.get("action")
        login_id = message["login_id"]
        answer: dict[str, Any]
        try:
            if action == "send_code":
                sent = await self.gateway.login_send_code(login_id, message["phone_number"])
                answer = {"step": "code", "code_type": sent.type}
            elif action in {"sign_in", "password"}:
                try:
                    if action == "sign_in":
                        result = await self.gateway.login_sign_in(login_id, message["code"])
                    else:
                        result = await self.gateway.login_password(login_id, message["password"])
                except PasswordNeeded as exc:
                    answer = {"step": "password", "hint": exc.hint}
                else:
                    account = await db(services.sender_account_save)(result=result)
                    answer = {"step": "done", "account": account.pk}
                    self._spawn(self.refresh_leases())
            else:
                await self.gateway.login_abort(login_id)
                answer = {"step": "aborted"}
        except GatewayError as exc:
            answer = {"error": exc.code.value, "retry_after": exc.retry_after}
        except Exception:
            logger.exception("Sender sign-in step %r failed", action)
            answer = {"error": ErrorCode.INTERNAL.value}
        await self.layer.send(
            message["reply_channel"],
            {"type": "telegram.login.reply", "worker": self.channel, **answer},
        )

    async def handle_cancel(self, message: dict[str, Any]) -> None:
        verification = await self._load(message["verification"])
        if verification is None or not verification.phone_code_hash:
            return
        await self._cancel_quietly(verification, verification.phone_code_hash)

    async def _cancel_quietly(self, verification: PhoneVerification, phone_code_hash: str) -> None:
        if verification.sender_account_id is None:
            return
        try:
            await self.gateway.cancel_code(
                verification.sender_account_id, verification.phone_number, phone_code_hash
            )
        except GatewayError as exc:
            # The verification is over either way; an unusable code is what we wanted.
            logger.info("auth.cancelCode for %s: %s", verification.pk, exc.telegram_error)
