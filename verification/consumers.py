"""The visitor's WebSocket: protocol v1 (see docs/protocol.md)."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
from typing import Any

from channels.db import database_sync_to_async
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.utils import timezone, translation
from django.utils.translation.trans_real import parse_accept_lang_header

from . import runtime, selectors, services
from .app_settings import get_config
from .errors import MESSAGES, ErrorCode, VerificationError
from .forms import CodeForm, PhoneForm
from .frames import error_frame, frame, group_name
from .models import PhoneVerification
from .worker import worker_channel, worker_request

logger = logging.getLogger("verification.consumer")

OWNER_SESSION_KEY = "verification_owner"
# Frames after which no request about that verification can still be answered.
ENDINGS = {"verified", "cancelled", "expired"}


def session_owner(session: Any) -> str:
    """The verification owner token kept in a Django session, created on first use."""
    owner = session.get(OWNER_SESSION_KEY)
    if not owner:
        owner = secrets.token_hex(16)
        session[OWNER_SESSION_KEY] = owner
        session.save()
    return owner


def _language(scope: dict[str, Any]) -> str:
    headers = dict(scope.get("headers") or [])
    cookies = scope.get("cookies") or {}
    candidates = []
    if cookie := cookies.get(settings.LANGUAGE_COOKIE_NAME):
        candidates.append(cookie)
    accept = headers.get(b"accept-language", b"").decode("latin-1")
    candidates += [lang for lang, _ in parse_accept_lang_header(accept)]
    for candidate in candidates:
        try:
            return translation.get_supported_language_variant(candidate)
        except LookupError:
            continue
    return settings.LANGUAGE_CODE


class VerificationConsumer(AsyncJsonWebsocketConsumer):
    owner = ""
    group = ""

    async def connect(self) -> None:
        self.language = _language(self.scope)
        self.timer: asyncio.Task[None] | None = None
        # Requests handed to the worker, by (verification id, kind), with their answer deadlines.
        self.awaiting: dict[tuple[str, str], asyncio.Task[None]] = {}
        session = self.scope.get("session")
        if session is None:
            logger.error("VerificationConsumer needs SessionMiddleware (AuthMiddlewareStack)")
            await self.close(code=4500)
            return
        try:
            await runtime.ensure_started()
        except Exception:
            logger.exception("The embedded Telegram worker did not start")
        if session.session_key is None:
            # No page was loaded (no cookie): this socket alone owns what it starts, and no
            # session row is written for it.
            self.owner = secrets.token_hex(16)
        else:
            self.owner = await database_sync_to_async(session_owner)(session)
        self.group = group_name(self.owner)
        await self.channel_layer.group_add(self.group, self.channel_name)
        await self.accept()
        await self.send_state()

    async def disconnect(self, code: int) -> None:
        if self.timer is not None:
            self.timer.cancel()
        for task in self.awaiting.values():
            task.cancel()
        if self.group:
            await self.channel_layer.group_discard(self.group, self.channel_name)

    # Client → server ------------------------------------------------------------------------

    async def receive(self, text_data: str | None = None, bytes_data: bytes | None = None) -> None:
        try:
            content = json.loads(text_data or "")
        except (ValueError, RecursionError):
            content = None
        if not isinstance(content, dict) or not isinstance(content.get("type"), str):
            await self.send_error(ErrorCode.BAD_MESSAGE)
            return
        handler = {
            "send_code": self.on_send_code,
            "resend": self.on_resend,
            "verify": self.on_verify,
            "cancel": self.on_cancel,
            "state": self.on_state,
        }.get(content["type"])
        if handler is None:
            await self.send_error(ErrorCode.BAD_MESSAGE)
            return
        try:
            await handler(content)
        except VerificationError as exc:
            verification = await self._current()
            await self.send_error(exc.code, verification, retry_after=exc.retry_after)
        except Exception:
            logger.exception("Handling %r failed", content["type"])
            await self.send_error(ErrorCode.INTERNAL)

    async def on_state(self, content: dict[str, Any]) -> None:
        await self.send_state()

    async def on_send_code(self, content: dict[str, Any]) -> None:
        raw = content.get("phone_number")
        if not isinstance(raw, str):
            raise VerificationError(ErrorCode.BAD_MESSAGE)
        form = PhoneForm({"phone_number": raw})
        if not form.is_valid():
            error = form.errors.as_data()["phone_number"][0]
            code = ErrorCode(error.code) if error.code in ErrorCode.__members__ else None
            raise VerificationError(code or ErrorCode.PHONE_NUMBER_INVALID)
        user = self.scope.get("user")
        signed_in = user is not None and user.is_authenticated
        if get_config()["REQUIRE_LOGIN"] and not signed_in:
            raise VerificationError(ErrorCode.LOGIN_REQUIRED)
        verification, cancelled = await database_sync_to_async(services.verification_start)(
            owner=self.owner,
            user=user if signed_in else None,
            phone_number=form.cleaned_data["phone_number"],
            region=form.region,
            ip_address=(self.scope.get("client") or [None])[0],
        )
        for previous in cancelled:
            await worker_request(previous, "cancel", layer=self.channel_layer)
        await self.push(frame("state", verification))
        if await worker_request(verification, "send", layer=self.channel_layer):
            self._expect_answer(verification, "send")
        else:
            await self._no_answer(verification, "send")

    async def _active(self) -> PhoneVerification:
        verification = await self._current()
        if verification is None:
            raise VerificationError(ErrorCode.NO_ACTIVE_VERIFICATION)
        expired = await self._expire_if_due(verification)
        if expired is not None:
            await self.push(frame("expired", expired))
            raise VerificationError(ErrorCode.PHONE_CODE_EXPIRED)
        if not verification.is_active:
            raise VerificationError(ErrorCode.NO_ACTIVE_VERIFICATION)
        return verification

    async def on_resend(self, content: dict[str, Any]) -> None:
        verification = await self._active()
        if not worker_channel(verification):
            raise VerificationError(ErrorCode.TELEGRAM_UNAVAILABLE)
        try:
            verification = await database_sync_to_async(services.verification_resend_request)(
                verification_id=verification.pk
            )
        except services.ResendInFlight:
            return
        verification = await self._reload(verification)
        if await worker_request(verification, "resend", layer=self.channel_layer):
            self._expect_answer(verification, "resend")
        else:
            await self._no_answer(verification, "resend")

    async def on_verify(self, content: dict[str, Any]) -> None:
        code = content.get("code")
        if code is not None and not isinstance(code, str):
            raise VerificationError(ErrorCode.BAD_MESSAGE)
        form = CodeForm({"code": code or ""})
        verification = await self._active()
        if not form.is_valid():
            empty = form.errors.as_data()["code"][0].code == ErrorCode.PHONE_CODE_EMPTY
            # Nothing Telegram could accept: refused here, without using up an attempt.
            raise VerificationError(
                ErrorCode.PHONE_CODE_EMPTY if empty else ErrorCode.PHONE_CODE_INVALID
            )
        if not worker_channel(verification):
            # Refused before the attempt is counted: nobody could judge the code now.
            raise VerificationError(ErrorCode.TELEGRAM_UNAVAILABLE)
        services.verification_attempt_check(verification=verification)
        if await worker_request(
            verification, "verify", layer=self.channel_layer, code=form.cleaned_data["code"]
        ):
            self._expect_answer(verification, "verify")
        else:
            await self._no_answer(verification, "verify")

    async def on_cancel(self, content: dict[str, Any]) -> None:
        verification = await self._active()
        verification = await database_sync_to_async(services.verification_cancel)(
            verification=verification
        )
        await self.push(frame("cancelled", verification))
        await worker_request(verification, "cancel", layer=self.channel_layer)

    # Server → client ------------------------------------------------------------------------

    async def _expire_if_due(self, verification: PhoneVerification) -> PhoneVerification | None:
        """Expire ``verification`` if its deadline passed; the locking write only then."""
        deadline = verification.expires_at
        if not verification.is_active or deadline is None or deadline > timezone.now():
            return None
        return await database_sync_to_async(services.verification_expire_if_due)(
            verification_id=verification.pk
        )

    async def _current(self) -> PhoneVerification | None:
        return await database_sync_to_async(selectors.verification_current)(owner=self.owner)

    async def _reload(self, verification: PhoneVerification) -> PhoneVerification:
        fresh = await database_sync_to_async(selectors.verification_get)(
            verification_id=verification.pk
        )
        return fresh or verification

    async def push(self, data: dict[str, Any]) -> None:
        """Send a frame to every tab of this browser session."""
        await self.channel_layer.group_send(
            self.group, {"type": "verification.frame", "frame": data}
        )

    async def send_state(self) -> None:
        verification = await self._current()
        if verification is not None:
            expired = await self._expire_if_due(verification)
            if expired is not None:
                # The other tabs learn it too.
                await self.push(frame("expired", expired))
            verification = expired or verification
        await self.send_frame(frame("state", verification))

    async def send_error(
        self,
        code: ErrorCode,
        verification: PhoneVerification | None = None,
        *,
        retry_after: int | None = None,
    ) -> None:
        await self.send_frame(error_frame(code, verification, retry_after=retry_after))

    async def send_frame(self, data: dict[str, Any]) -> None:
        if data.get("type") == "error":
            with translation.override(self.language):
                data = {**data, "message": str(MESSAGES[ErrorCode(data["code"])])}
        await self.send_json(data)
        if "verification" in data:
            self._watch(data["verification"])

    async def verification_frame(self, event: dict[str, Any]) -> None:
        """A frame pushed by the worker or another tab through the channel layer."""
        data = event["frame"]
        snapshot = data.get("verification")
        if snapshot:
            answered = {event.get("answers")} if event.get("answers") else set()
            if data["type"] in ENDINGS:
                answered = {"send", "resend", "verify"}
            for kind in answered:
                task = self.awaiting.pop((snapshot["id"], kind), None)
                if task is not None:
                    task.cancel()
        await self.send_frame(data)

    # Answers from the worker ---------------------------------------------------------------

    def _expect_answer(self, verification: PhoneVerification, kind: str) -> None:
        """Tell the visitor if the worker never answers (it died holding the request)."""
        key = (str(verification.pk), kind)
        if key in self.awaiting:
            self.awaiting.pop(key).cancel()
        self.awaiting[key] = asyncio.ensure_future(self._answer_deadline(verification, kind))

    async def _answer_deadline(self, verification: PhoneVerification, kind: str) -> None:
        await asyncio.sleep(get_config()["REQUEST_TIMEOUT"] + 2)
        self.awaiting.pop((str(verification.pk), kind), None)
        await self._no_answer(verification, kind)

    async def _no_answer(self, verification: PhoneVerification, kind: str) -> None:
        """No worker took the request: record it and tell every tab."""
        if kind == "verify":
            # The worker counts an attempt when it takes the code, so none was used up.
            updated = await self._reload(verification)
            if not updated.is_active:
                return
        else:
            updated = await database_sync_to_async(services.verification_send_failed)(
                verification_id=verification.pk, code=ErrorCode.TELEGRAM_UNAVAILABLE
            )
        if updated is not None:
            await self.push(error_frame(ErrorCode.TELEGRAM_UNAVAILABLE, updated))

    # Deadlines ------------------------------------------------------------------------------

    def _watch(self, snapshot: dict[str, Any] | None) -> None:
        """Wake up when the shown verification's next deadline passes."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not snapshot or snapshot["status"] not in PhoneVerification.ACTIVE_STATUSES:
            return
        waits = [s for s in (snapshot["expires_in"],) if s is not None]
        if snapshot["resend_in"]:
            waits.append(snapshot["resend_in"])
        if not waits:
            return
        self.timer = asyncio.ensure_future(self._deadline(snapshot["id"], min(waits)))

    async def _deadline(self, verification_id: str, delay: float) -> None:
        await asyncio.sleep(delay + 0.05)
        expired = await database_sync_to_async(services.verification_expire_if_due)(
            verification_id=verification_id
        )
        if expired is not None:
            self.timer = None
            await self.push(frame("expired", expired))
            return
        verification = await database_sync_to_async(selectors.verification_get)(
            verification_id=verification_id
        )
        self.timer = None
        if verification is None or verification.owner != self.owner:
            return
        snapshot = selectors.verification_snapshot(verification)
        if verification.status == PhoneVerification.Status.CODE_SENT and snapshot["resend_in"] == 0:
            # Each tab runs its own clock, so this frame goes to this tab only.
            await self.send_frame(frame("resend_available", verification))
        else:
            self._watch(snapshot)
