"""Telegram's Gateway API (core.telegram.org/gateway/api) as a transport: HTTP, no account.

Telegram generates each code and checks it (``checkVerificationStatus``), so the site never sees
one. Transport only: plain values in, :class:`RequestStatus` out, every failure raised as
:class:`GatewayError` with a protocol error code. Delivery reports are checked with
:func:`report_signature`.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from dataclasses import dataclass
from typing import Any

import httpx

from ..errors import ErrorCode
from .base import CodeDelivery, CodeTransport, GatewayError, SentCode

logger = logging.getLogger("verification.gateway")

DEFAULT_URL = "https://gatewayapi.telegram.org/"

#: Delivery statuses, in the order a message goes through them (a later report of an earlier
#: status, which arrives out of order, does not replace a later one).
DELIVERY_STATUSES = ("sent", "delivered", "read", "expired", "revoked")
DELIVERY_RANK = {"sent": 1, "delivered": 2, "read": 3, "expired": 4, "revoked": 4}

# checkVerificationStatus → the error the visitor is shown (None: the code was right).
VERIFICATION_ERRORS: dict[str, ErrorCode | None] = {
    "code_valid": None,
    "code_invalid": ErrorCode.PHONE_CODE_INVALID,
    "code_max_attempts_exceeded": ErrorCode.TOO_MANY_ATTEMPTS,
    "expired": ErrorCode.PHONE_CODE_EXPIRED,
}

# The Gateway's error strings → ours. Telegram's reference names no error string but
# ACCESS_TOKEN_INVALID (as an example); these are the names public Gateway clients handle:
# PHONE_NUMBER_NOT_FOUND is a number that cannot receive (not on Telegram), FLOOD_WAIT_N asks
# to wait N seconds. PHONE_NUMBER_BANNED is MTProto's name, kept in case the Gateway uses it.
# Anything else (ACCESS_TOKEN_INVALID, BALANCE_NOT_ENOUGH, a bad parameter) is a problem on the
# site's side of the Gateway: the visitor is told Telegram is unavailable, and the send may
# fall through to another transport.
_ERRORS = {
    "PHONE_NUMBER_INVALID": ErrorCode.PHONE_NUMBER_INVALID,
    "PHONE_NUMBER_NOT_FOUND": ErrorCode.PHONE_NOT_ON_TELEGRAM,
    "PHONE_NUMBER_BANNED": ErrorCode.PHONE_NUMBER_BANNED,
    "REQUEST_ID_INVALID": ErrorCode.PHONE_CODE_EXPIRED,
}

#: Gateway errors after which another transport may still deliver a code: the number is not on
#: Telegram, the Gateway is unreachable or refuses on the site's side (a balance too low), or
#: it asks to wait.
FALLS_THROUGH = {
    ErrorCode.PHONE_NOT_ON_TELEGRAM,
    ErrorCode.TELEGRAM_UNAVAILABLE,
    ErrorCode.FLOOD_WAIT,
}


class OutcomeUnknown(GatewayError):
    """A call that failed after its request may have reached the Gateway (cut off, or given up
    at a deadline): a message may have gone out, so no other transport sends one."""


@dataclass(frozen=True)
class RequestStatus:
    """The Gateway's ``RequestStatus`` object."""

    request_id: str
    phone_number: str
    request_cost: float = 0.0
    remaining_balance: float | None = None
    is_refunded: bool = False
    delivery_status: str | None = None
    delivery_updated_at: int | None = None
    verification_status: str | None = None
    payload: str = ""

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> RequestStatus:
        delivery = data.get("delivery_status") or {}
        verification = data.get("verification_status") or {}
        return cls(
            request_id=str(data["request_id"]),
            phone_number=str(data.get("phone_number", "")),
            request_cost=float(data.get("request_cost") or 0),
            remaining_balance=(
                float(data["remaining_balance"])
                if data.get("remaining_balance") is not None
                else None
            ),
            is_refunded=bool(data.get("is_refunded", False)),
            delivery_status=delivery.get("status"),
            delivery_updated_at=delivery.get("updated_at"),
            verification_status=verification.get("status"),
            payload=str(data.get("payload") or ""),
        )

    @property
    def cost(self) -> dict[str, Any]:
        """What the request cost, for the verification's events."""
        return {"request_cost": self.request_cost, "remaining_balance": self.remaining_balance}


def report_signature(token: str, timestamp: str, body: bytes) -> str:
    """The ``X-Request-Signature`` of a delivery report: hex HMAC-SHA-256 of
    ``timestamp + "\\n" + body``, keyed with the SHA-256 digest of the API token, where
    ``timestamp`` is the ``X-Request-Timestamp`` header as sent and ``body`` the raw POST body
    (the Gateway API reference, "Checking report integrity")."""
    key = hashlib.sha256(token.encode()).digest()
    return hmac.new(key, timestamp.encode() + b"\n" + body, hashlib.sha256).hexdigest()


def error_code(error: str) -> ErrorCode:
    """Our protocol error code for a Gateway error string."""
    if error.startswith("FLOOD_WAIT"):
        return ErrorCode.FLOOD_WAIT
    return _ERRORS.get(error, ErrorCode.TELEGRAM_UNAVAILABLE)


def _retry_after(error: str) -> int | None:
    _, _, seconds = error.rpartition("_")
    return int(seconds) if error.startswith("FLOOD_WAIT") and seconds.isdigit() else None


class TelegramGatewayAPI:
    """An async client of the Gateway API, bound to the event loop it is first used on.

    ``retries`` applies to calls that change nothing when repeated, and to any call whose
    connection could not be opened (the request never left).
    """

    def __init__(
        self,
        *,
        token: str,
        url: str = DEFAULT_URL,
        timeout: float = 10.0,
        retries: int = 2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.token = token
        self.url = url.rstrip("/") + "/"
        self.timeout = timeout
        self.retries = retries
        self._transport = transport
        self._client: httpx.AsyncClient | None = None

    def _http(self) -> httpx.AsyncClient:
        if self._client is None:
            self._client = httpx.AsyncClient(
                base_url=self.url,
                timeout=httpx.Timeout(self.timeout, connect=min(5.0, self.timeout)),
                headers={"Authorization": f"Bearer {self.token}"},
                transport=self._transport,
            )
        return self._client

    async def aclose(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    async def _call(self, method: str, params: dict[str, Any], *, idempotent: bool) -> Any:
        params = {name: value for name, value in params.items() if value not in (None, "")}
        attempt = 0
        while True:
            try:
                response = await self._http().post(method, json=params)
            except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
                error: Exception = exc
            except httpx.HTTPError as exc:
                if not idempotent:
                    raise OutcomeUnknown(
                        ErrorCode.TELEGRAM_UNAVAILABLE, telegram_error=type(exc).__name__
                    ) from exc
                error = exc
            else:
                if response.status_code >= 500 and idempotent:
                    error = RuntimeError(f"HTTP {response.status_code}")
                else:
                    return self._result(method, response)
            if attempt >= self.retries:
                raise GatewayError(
                    ErrorCode.TELEGRAM_UNAVAILABLE, telegram_error=type(error).__name__
                ) from error
            attempt += 1
            await asyncio.sleep(0.2 * 2**attempt)

    def _result(self, method: str, response: httpx.Response) -> Any:
        try:
            data = response.json()
        except ValueError:
            data = None
        if not isinstance(data, dict):
            raise GatewayError(
                ErrorCode.TELEGRAM_UNAVAILABLE, telegram_error=f"HTTP_{response.status_code}"
            )
        if not data.get("ok"):
            error = str(data.get("error") or f"HTTP_{response.status_code}")
            code = error_code(error)
            if code is ErrorCode.TELEGRAM_UNAVAILABLE:
                logger.error("Gateway API %s failed: %s", method, error)
            raise GatewayError(code, retry_after=_retry_after(error), telegram_error=error)
        return data.get("result")

    async def check_send_ability(self, phone_number: str) -> RequestStatus:
        """``checkSendAbility``: whether ``phone_number`` can get a code (billed when it can;
        the ``request_id`` it returns makes the next send of that number free)."""
        result = await self._call(
            "checkSendAbility", {"phone_number": phone_number}, idempotent=True
        )
        return RequestStatus.from_json(result)

    async def send_verification_message(
        self,
        phone_number: str,
        *,
        request_id: str = "",
        code_length: int | None = None,
        ttl: int | None = None,
        callback_url: str = "",
        sender_username: str = "",
        payload: str = "",
    ) -> RequestStatus:
        """``sendVerificationMessage``: Telegram generates a code and sends it."""
        result = await self._call(
            "sendVerificationMessage",
            {
                "phone_number": phone_number,
                "request_id": request_id,
                "code_length": code_length,
                "ttl": ttl,
                "callback_url": callback_url,
                "sender_username": sender_username,
                "payload": payload,
            },
            idempotent=False,
        )
        return RequestStatus.from_json(result)

    async def check_verification_status(self, request_id: str, code: str) -> RequestStatus:
        """``checkVerificationStatus`` with the code the visitor typed."""
        result = await self._call(
            "checkVerificationStatus", {"request_id": request_id, "code": code}, idempotent=False
        )
        return RequestStatus.from_json(result)

    async def revoke_verification_message(self, request_id: str) -> bool:
        """``revokeVerificationMessage`` (a message already delivered or read stays)."""
        return bool(
            await self._call(
                "revokeVerificationMessage", {"request_id": request_id}, idempotent=True
            )
        )


class GatewayCodes(CodeTransport):
    """The Gateway API as a :class:`CodeTransport`: Telegram generates each code and checks it.

    :meth:`send` asks ``checkSendAbility`` first and hands its ``request_id`` to the
    ``sendVerificationMessage`` that follows, which is then free. A check billed with no message
    after it (the send failed, or was given up) stays in :attr:`unspent_check` so that its cost
    can still be recorded; a failed send's :class:`GatewayError` also carries it as ``cost``.
    """

    def __init__(
        self,
        api: TelegramGatewayAPI,
        *,
        code_length: int | None = None,
        ttl: int | None = None,
        callback_url: str = "",
        sender_username: str = "",
        resend_timeout: int | None = None,
    ) -> None:
        self.api = api
        self.code_length = code_length
        self.ttl = ttl
        self.callback_url = callback_url
        self.sender_username = sender_username
        self.resend_timeout = resend_timeout
        self.unspent_check: RequestStatus | None = None

    def _sent(self) -> SentCode:
        # A code in the Telegram app; the next way is another message.
        return SentCode(
            type="app",
            phone_code_hash="",
            length=self.code_length,
            next_type="app",
            timeout=self.resend_timeout,
        )

    async def _message(self, phone_number: str, request_id: str = "") -> RequestStatus:
        return await self.api.send_verification_message(
            phone_number,
            request_id=request_id,
            code_length=self.code_length,
            ttl=self.ttl,
            callback_url=self.callback_url,
            sender_username=self.sender_username,
        )

    async def send(self, phone_number: str) -> CodeDelivery:
        ability = await self.api.check_send_ability(phone_number)
        self.unspent_check = ability if ability.request_cost else None
        try:
            status = await self._message(phone_number, ability.request_id)
        except GatewayError as exc:
            if self.unspent_check is not None:
                exc.cost = self.unspent_check.cost
            raise
        self.unspent_check = None
        balance = status.remaining_balance
        cost = {
            # The check was billed and made the send free: the message cost both together.
            "request_cost": ability.request_cost + status.request_cost,
            # Reported only by a call that was charged.
            "remaining_balance": balance if balance is not None else ability.remaining_balance,
        }
        return CodeDelivery(self._sent(), status.request_id, cost)

    async def resend(self, phone_number: str, handle: str) -> CodeDelivery:
        """A new message with a new code (billed); the previous one is revoked."""
        status = await self._message(phone_number)
        await self.cancel(phone_number, handle)
        return CodeDelivery(self._sent(), status.request_id, status.cost)

    async def check(self, phone_number: str, handle: str, code: str) -> None:
        status = await self.api.check_verification_status(handle, code)
        verdict = status.verification_status or ""
        error = VERIFICATION_ERRORS.get(verdict, ErrorCode.PHONE_CODE_INVALID)
        if error is not None:
            raise GatewayError(error, telegram_error=verdict)

    async def cancel(self, phone_number: str, handle: str) -> None:
        """``revokeVerificationMessage``. A message already delivered or read stays in the
        visitor's chat; the Gateway documents no more than that, so the app never checks a code
        of a verification it cancelled (the sandbox answers ``expired`` for a revoked one)."""
        if not handle:
            return
        try:
            await self.api.revoke_verification_message(handle)
        except GatewayError as exc:
            # The code is over either way.
            logger.info("revokeVerificationMessage: %s", exc.telegram_error)
