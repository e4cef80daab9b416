"""What a worker does with each request: the Telegram call and the step it records.

Every request carries a deadline (see :mod:`verification.engine`). A request still queued at its
deadline is answered TELEGRAM_UNAVAILABLE without calling Telegram, and a call is given up in
Telethon when the deadline (or the account's lease fence) comes, so the tab's answer and what
Telegram did always agree.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from channels.layers import BaseChannelLayer

from .. import dispatch, services
from ..crypto import is_undecryptable
from ..db import db
from ..errors import ErrorCode
from ..frames import error_frame, frame
from ..gateway import GatewayError, TelegramGateway
from ..gateway.base import AccountUnusable, PasswordNeeded
from ..models import PhoneVerification
from ..selectors import sender_account_session, verification_get
from .leases import LeaseKeeper

logger = logging.getLogger("verification.worker")

Status = PhoneVerification.Status

_TOO_LATE = GatewayError(ErrorCode.TELEGRAM_UNAVAILABLE, telegram_error="REQUEST_TIMEOUT")
# The stored phone_code_hash cannot be decrypted (an encryption key was removed): the code it
# names can never be checked again.
_UNREADABLE_HASH = GatewayError(ErrorCode.PHONE_CODE_EXPIRED, telegram_error="HASH_UNDECRYPTABLE")
SENDER = PhoneVerification.Transport.SENDER


def _account_side(exc: GatewayError) -> bool:
    """Whether a refused send is the sender accounts' trouble, which another transport may not
    have: a flood wait no other account could take over, or an account that is not connected,
    not authorised or cannot reach Telegram. Not a timeout: the code may have gone out, and the
    deadline every transport shares has passed."""
    if exc.code is ErrorCode.FLOOD_WAIT:
        return True
    return exc.code is ErrorCode.TELEGRAM_UNAVAILABLE and exc.telegram_error != "REQUEST_TIMEOUT"


class Handlers:
    def __init__(
        self, *, gateway: TelegramGateway, leases: LeaseKeeper, layer: BaseChannelLayer
    ) -> None:
        self.gateway = gateway
        self.leases = leases
        self.layer = layer
        self.channel = leases.owner
        # Account id -> (number, until): the last number-level flood seen on that account.
        self._floods: dict[int, tuple[str, float]] = {}

    def for_kind(self, kind: str) -> Any:
        return {
            "telegram.send": self.send,
            "telegram.resend": self.resend,
            "telegram.verify": self.verify,
            "telegram.cancel": self.cancel,
        }.get(kind)

    # Sending ----------------------------------------------------------------------------------

    async def send(self, message: dict[str, Any]) -> None:
        account_id = message["account"]
        current = await db(verification_get)(verification_id=message["verification"])
        if current is None or current.status != Status.SENDING or current.transport != SENDER:
            # Replaced, cancelled or moved to another transport before its turn: no code goes
            # out for it here.
            return
        try:
            if time.time() >= message["deadline"]:
                raise _TOO_LATE
            sent = await self.leases.call(
                account_id,
                message["deadline"],
                self.gateway.send_verify_code,
                message["phone_number"],
            )
        except GatewayError as exc:
            if exc.code is ErrorCode.FLOOD_WAIT and await self._flooded(message, exc):
                return
            if _account_side(exc) and await dispatch.fall_through(message, exc, transport=SENDER):
                await self._account_failed(account_id, exc)
                return
            await self._send_failed(message, exc)
            return
        if failed_over := message.get("failover_from"):
            # Another account sent this number a code at once: the flood was that account's.
            await self._mark_flooded(failed_over, message["flood_seconds"])
        updated = await db(services.verification_code_sent)(
            verification_id=message["verification"], sent=sent
        )
        if updated is None:
            # Cancelled while Telegram was sending: make that code useless too.
            await self._cancel_quietly(
                account_id, message["phone_number"], sent.phone_code_hash, message["deadline"]
            )
            return
        await dispatch.push(updated.owner, frame("code_sent", updated), answers=message["request"])

    async def _flooded(self, message: dict[str, Any], exc: GatewayError) -> bool:
        """A FLOOD_WAIT on a send: decide whose it is. True when the request went elsewhere.

        The account's, if another sender can send this number a code now (it is tried once),
        or if this account floods on a second number within a wait. Otherwise the number's:
        the visitor waits it out, as Telegram asks.
        """
        account_id = message["account"]
        seconds = exc.retry_after or 0
        phone = message["phone_number"]
        now = time.time()
        previous = self._floods.get(account_id)
        if previous is not None and previous[0] != phone and previous[1] > now:
            await self._mark_flooded(account_id, seconds)
        self._floods[account_id] = (phone, now + seconds)
        if message.get("failover_from"):
            return False
        moved = await db(services.verification_failover)(
            verification_id=message["verification"], flooded_account_id=account_id
        )
        if moved is None:
            return False
        request = dispatch.Request(message["request"], "send", moved, message["deadline"])
        return await dispatch.hand_over(request, failover_from=account_id, flood_seconds=seconds)

    async def _mark_flooded(self, account_id: int, seconds: int) -> None:
        logger.warning("Sender account %s is flood-waiting %s s", account_id, seconds)
        await db(services.sender_account_mark_flooded)(account_id=account_id, seconds=seconds)

    async def _send_failed(self, message: dict[str, Any], exc: GatewayError) -> None:
        """Record a refused send or resend and tell the visitor's tabs."""
        await self._account_failed(message["account"], exc)
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

    async def _account_failed(self, account_id: int | None, exc: GatewayError) -> None:
        if isinstance(exc, AccountUnusable) and account_id is not None:
            self.leases.forget(account_id)
            await self.gateway.close(account_id)
            await db(services.sender_account_mark_dead)(
                account_id=account_id, error=exc.telegram_error
            )

    async def resend(self, message: dict[str, Any]) -> None:
        verification = await db(verification_get)(verification_id=message["verification"])
        if verification is None or verification.status != Status.CODE_SENT:
            await db(services.verification_resend_done)(verification_id=message["verification"])
            return
        try:
            if time.time() >= message["deadline"]:
                raise _TOO_LATE
            if is_undecryptable(verification.phone_code_hash):
                raise _UNREADABLE_HASH
            sent = await self.leases.call(
                message["account"],
                message["deadline"],
                self.gateway.resend_code,
                verification.phone_number,
                verification.phone_code_hash,
            )
        except GatewayError as exc:
            await self._send_failed(message, exc)
            return
        updated = await db(services.verification_code_sent)(
            verification_id=verification.pk, sent=sent, resent=True
        )
        if updated is not None:
            await dispatch.push(
                updated.owner, frame("code_sent", updated), answers=message["request"]
            )

    # Checking a code --------------------------------------------------------------------------

    async def verify(self, message: dict[str, Any]) -> None:
        verification = await dispatch.attempt_take(message)
        if verification is None:
            return
        error: GatewayError | None = None
        try:
            if is_undecryptable(verification.phone_code_hash):
                raise _UNREADABLE_HASH
            await self.leases.call(
                message["account"],
                message["deadline"],
                self.gateway.verify_phone,
                verification.phone_number,
                verification.phone_code_hash,
                message["code"],
            )
        except GatewayError as exc:
            await self._account_failed(message["account"], exc)
            error = exc
        except Exception as exc:
            # Not Telegram's verdict on the code: the attempt is given back.
            logger.exception("Checking a code failed")
            error = GatewayError(ErrorCode.INTERNAL, telegram_error=type(exc).__name__)
        await self._verified(message, verification, error)

    async def _verified(
        self, message: dict[str, Any], verification: PhoneVerification, error: GatewayError | None
    ) -> None:
        async def exhausted() -> None:
            await self._cancel_quietly(
                message["account"],
                verification.phone_number,
                verification.phone_code_hash,
                time.time() + 5,
            )

        await dispatch.attempt_answer(message, verification, error, on_exhausted=exhausted)

    # Cancelling -------------------------------------------------------------------------------

    async def cancel(self, message: dict[str, Any]) -> None:
        verification = await db(verification_get)(verification_id=message["verification"])
        if verification is None or not verification.phone_code_hash:
            return
        await self._cancel_quietly(
            message["account"],
            verification.phone_number,
            verification.phone_code_hash,
            message["deadline"],
        )

    async def _cancel_quietly(
        self, account_id: int | None, phone_number: str, phone_code_hash: str, deadline: float
    ) -> None:
        if account_id is None:
            return
        try:
            await self.leases.call(
                account_id, deadline, self.gateway.cancel_code, phone_number, phone_code_hash
            )
        except GatewayError as exc:
            # The verification is over either way; an unusable code is what we wanted.
            logger.info("auth.cancelCode: %s", exc.telegram_error)

    # A request that failed in an unexpected way ------------------------------------------------

    async def failed(self, message: dict[str, Any]) -> None:
        """Answer a request whose handler raised: the row never stays ``sending``."""
        kind = message.get("type", "").removeprefix("telegram.")
        error = GatewayError(ErrorCode.INTERNAL, telegram_error="INTERNAL")
        if kind in {"send", "resend"}:
            await self._send_failed(message, error)
        elif kind == "verify":
            verification = await db(verification_get)(verification_id=message["verification"])
            if verification is not None:
                await self._verified(message, verification, error)

    # Signing sender accounts in ----------------------------------------------------------------

    async def login(self, message: dict[str, Any], *, on_done: Any) -> None:
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
                    on_done()
            elif action == "log_out":
                # Before the admin deletes the account: end its session on Telegram too.
                account_id = message["account"]
                session = await db(sender_account_session)(account_id=account_id)
                await self.gateway.close(account_id)
                if session:
                    await self.gateway.log_out(session)
                answer = {"step": "logged_out"}
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
