"""The visitor's WebSocket: protocol v1 (see docs/protocol.md), adapted onto the engine."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from channels.consumer import get_handler_name
from channels.generic.websocket import AsyncJsonWebsocketConsumer
from django.conf import settings
from django.utils import translation
from django.utils.translation.trans_real import parse_accept_lang_header

from . import engine, runtime
from .addresses import address_bucket, client_address
from .app_settings import get_config
from .challenges import ChallengeError
from .db import db
from .dispatch import Request
from .errors import ErrorCode, VerificationError, error_message
from .forms import CodeForm, PhoneForm
from .frames import error_frame, frame, group_name
from .origins import CLOSE_ORIGIN_NOT_ALLOWED, origin_allowed
from .owners import OWNER_SESSION_KEY, owner_revoked, session_owner
from .selectors import verification_snapshot
from .sockets import CLOSE_TOO_MANY_SOCKETS, socket_closed, socket_open
from .throttle import FrameGuard

logger = logging.getLogger("verification.consumer")

#: Close code for a socket whose session signed in or out (its owner token was replaced).
CLOSE_OWNER_CHANGED = 4403


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

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        config = get_config()
        guard = FrameGuard(receive, send, rate=config["FRAME_RATE"], burst=config["FRAME_BURST"])
        # Counted for as long as this call runs, which is as long as the socket is open.
        bucket = address_bucket(client_address(scope))
        limit = config["MAX_SOCKETS_PER_ADDRESS"]
        self.refused = 0 if origin_allowed(scope) else CLOSE_ORIGIN_NOT_ALLOWED
        counted = not self.refused and socket_open(bucket=bucket, limit=limit)
        if not self.refused and not counted:
            self.refused = CLOSE_TOO_MANY_SOCKETS
        try:
            await super().__call__(scope, guard.receive, send)
        finally:
            guard.stop()
            if counted:
                socket_closed(bucket=bucket)

    async def connect(self) -> None:
        if self.refused:
            # Refused before the handshake completes, and before this socket costs any work.
            await self.close(code=self.refused)
            return
        self.language = _language(self.scope)
        self.address = client_address(self.scope)
        self.timer: asyncio.Task[None] | None = None
        self.watchdogs = engine.Watchdogs()
        session = self.scope.get("session")
        if session is None:
            logger.error("VerificationConsumer needs SessionMiddleware (AuthMiddlewareStack)")
            await self.close(code=4500)
            return
        try:
            await runtime.ensure_started()
        except Exception:
            logger.exception("The embedded Telegram worker did not start")
        # Nothing is written on connect: a session gets its owner token with its first send
        # (the page view usually gave it one already).
        self.owner = session.get(OWNER_SESSION_KEY, "") if session.session_key else ""
        await self._join()
        await self.accept()
        await self.send_frame(frame("state", await engine.current(self.owner)))

    async def dispatch(self, message: dict[str, Any]) -> None:
        # Channels closes stale database connections before every message, a thread hop per
        # frame. This consumer touches the database only through verification.db, whose
        # threads look after their own connections.
        handler = getattr(self, get_handler_name(message), None)
        if handler is None:
            raise ValueError(f"No handler for message type {message['type']}")
        await handler(message)

    async def _join(self) -> None:
        if self.owner and not self.group:
            self.group = group_name(self.owner)
            await self.channel_layer.group_add(self.group, self.channel_name)

    async def disconnect(self, code: int) -> None:
        if self.refused:
            return
        if self.timer is not None:
            self.timer.cancel()
        self.watchdogs.close()
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
            "passport_start": self.on_passport_start,
        }.get(content["type"])
        if handler is None:
            await self.send_error(ErrorCode.BAD_MESSAGE)
            return
        owner = self.owner or self.scope["session"].get(OWNER_SESSION_KEY, "")
        if content["type"] != "state" and await owner_revoked(owner):
            # Signed in or out meanwhile; the close from the owner's group is on its way.
            await self.close(code=CLOSE_OWNER_CHANGED)
            return
        try:
            self.watchdogs.expect(await handler(content))
        except VerificationError as exc:
            await self.send_error(
                exc.code,
                await engine.current(self.owner),
                retry_after=exc.retry_after,
                limit=exc.limit,
                challenge=exc.challenge if isinstance(exc, ChallengeError) else None,
            )
        except Exception:
            logger.exception("Handling %r failed", content["type"])
            await self.send_error(ErrorCode.INTERNAL)

    async def on_state(self, content: dict[str, Any]) -> None:
        await self.send_frame(frame("state", await engine.current(self.owner)))

    async def on_send_code(self, content: dict[str, Any]) -> Request | None:
        raw = content.get("phone_number")
        if not isinstance(raw, str):
            raise VerificationError(ErrorCode.BAD_MESSAGE)
        form = PhoneForm({"phone_number": raw})
        if not form.is_valid():
            error = form.errors.as_data()["phone_number"][0]
            code = (
                ErrorCode(error.code)
                if error.code is not None and error.code in ErrorCode.__members__
                else None
            )
            raise VerificationError(code or ErrorCode.PHONE_NUMBER_INVALID)
        user = self.scope.get("user")
        signed_in = user is not None and user.is_authenticated
        if get_config()["REQUIRE_LOGIN"] and not signed_in:
            raise VerificationError(ErrorCode.LOGIN_REQUIRED)
        if not self.owner:
            session = self.scope["session"]
            if session.session_key is None:
                # No page was loaded (no cookie). A new owner for every such socket would make the
                # session limit meaningless, so it cannot start anything.
                raise VerificationError(ErrorCode.SESSION_REQUIRED)
            self.owner = await db(session_owner)(session)
            await self._join()
        return await engine.start(
            owner=self.owner,
            user=user if signed_in else None,
            phone_number=form.cleaned_data["phone_number"],
            region=form.region,
            ip_address=self.address,
            challenge=content.get("challenge"),
        )

    async def on_passport_start(self, content: dict[str, Any]) -> None:
        user = self.scope.get("user")
        signed_in = user is not None and user.is_authenticated
        if get_config()["REQUIRE_LOGIN"] and not signed_in:
            raise VerificationError(ErrorCode.LOGIN_REQUIRED)
        await self._own()
        await engine.passport_start(
            owner=self.owner,
            user=user if signed_in else None,
            ip_address=self.address,
        )

    async def _own(self) -> None:
        """Give this socket's session an owner token (its first start)."""
        if self.owner:
            return
        session = self.scope["session"]
        if session.session_key is None:
            # No page was loaded (no cookie). A new owner for every such socket would make the
            # session limit meaningless, so it cannot start anything.
            raise VerificationError(ErrorCode.SESSION_REQUIRED)
        self.owner = await db(session_owner)(session)
        await self._join()

    async def on_resend(self, content: dict[str, Any]) -> Request | None:
        return await engine.resend(owner=self.owner)

    async def on_verify(self, content: dict[str, Any]) -> Request | None:
        code = content.get("code")
        if code is not None and not isinstance(code, str):
            raise VerificationError(ErrorCode.BAD_MESSAGE)
        form = CodeForm({"code": code or ""})
        if not form.is_valid():
            await engine.active(self.owner)
            empty = form.errors.as_data()["code"][0].code == ErrorCode.PHONE_CODE_EMPTY
            # Nothing Telegram could accept: refused here, without using up an attempt.
            raise VerificationError(
                ErrorCode.PHONE_CODE_EMPTY if empty else ErrorCode.PHONE_CODE_INVALID
            )
        return await engine.submit_code(owner=self.owner, code=form.cleaned_data["code"])

    async def on_cancel(self, content: dict[str, Any]) -> None:
        await engine.cancel(owner=self.owner)

    # Server → client ------------------------------------------------------------------------

    async def send_error(self, code: ErrorCode, verification: Any = None, **extra: Any) -> None:
        await self.send_frame(error_frame(code, verification, **extra))

    async def send_frame(self, data: dict[str, Any]) -> None:
        if data.get("type") == "error":
            with translation.override(self.language):
                message = error_message(ErrorCode(data["code"]), data.get("limit"))
                data = {**data, "message": message}
        await self.send_json(data)
        if "verification" in data:
            self._watch(data["verification"])

    async def verification_revoked(self, event: dict[str, Any]) -> None:
        """The session signed in or out: this socket's owner token is no longer its own."""
        await self.close(code=CLOSE_OWNER_CHANGED)

    async def verification_frame(self, event: dict[str, Any]) -> None:
        """A frame pushed by the worker or another tab through the channel layer."""
        self.watchdogs.answered(event)
        await self.send_frame(event["frame"])

    # Deadlines ------------------------------------------------------------------------------

    def _watch(self, snapshot: dict[str, Any] | None) -> None:
        """Wake up when the shown verification's next deadline passes."""
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None
        if not snapshot or snapshot["status"] not in ("sending", "code_sent", "waiting"):
            return
        waits = [snapshot["expires_in"]] if snapshot["expires_in"] is not None else []
        if snapshot["resend_in"]:
            waits.append(snapshot["resend_in"])
        if waits:
            self.timer = asyncio.ensure_future(self._deadline(min(waits)))

    async def _deadline(self, delay: float) -> None:
        await asyncio.sleep(delay + 0.05)
        self.timer = None
        verification = await engine.current(self.owner)
        if verification is None or not verification.is_active:
            return  # An expiry was pushed to every tab by engine.current.
        snapshot = verification_snapshot(verification)
        if verification.status == "code_sent" and snapshot["resend_in"] == 0:
            # Each tab runs its own clock, so this frame goes to this tab only.
            await self.send_frame(frame("resend_available", verification))
        else:
            self._watch(snapshot)
