"""An in-memory gateway for fast tests, in the spirit of Django's locmem mail backend.

It follows the sandbox's rules for test numbers (``+99966XYYYY`` gets the code ``X`` five times,
SMS then call then nothing; ``+99966X9001``-``9003`` refuse a send as the sandbox does) without
any network. Codes it "delivers" land in
:attr:`FakeGateway.outbox`; :meth:`FakeGateway.fail_next` scripts errors.
``tests/test_gateway_contract.py`` holds it to the same contract as Telethon on the sandbox.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from ..errors import ErrorCode
from ..passport import SharedPassport
from .base import (
    AccountUnusable,
    GatewayError,
    LoginResult,
    PasswordNeeded,
    SentCode,
    TelegramGateway,
)

_CHAIN = {"sms": "call", "call": None}
#: Wrong codes after which a code dies, as in the sandbox.
MAX_ATTEMPTS = 5
# The sandbox's scenario numbers (``+99966X900N``) that refuse a send.
_SEND_ERRORS = {
    "9001": (ErrorCode.FLOOD_WAIT, 30, "FLOOD_WAIT_30"),
    "9002": (ErrorCode.PHONE_NUMBER_INVALID, None, "PhoneNumberInvalidError"),
    "9003": (ErrorCode.PHONE_NUMBER_BANNED, None, "PhoneNumberBannedError"),
}


@dataclass
class _Code:
    account_id: int | str
    phone_number: str
    code: str
    type: str
    live: bool = True
    attempts: int = 0


class FakeGateway(TelegramGateway):
    outbox: list[tuple[str, str]] = []
    #: Sessions ended with :meth:`log_out`; they can no longer be opened.
    logged_out: set[str] = set()
    _scripted: list[tuple[str, GatewayError]] = []
    _codes: dict[str, _Code] = {}
    delay: float = 0.0
    resend_timeout: int = 60
    #: The handlers of the open Passport bots (:meth:`deliver_passport` calls them).
    _bot_handlers: list[Callable[[SharedPassport], Awaitable[None]]] = []
    _bot_handler: Callable[[SharedPassport], Awaitable[None]] | None = None

    @classmethod
    def reset(cls) -> None:
        cls._bot_handlers = []
        cls.outbox = []
        cls.logged_out = set()
        cls._scripted = []
        cls._codes = {}
        cls.delay = 0.0
        cls.resend_timeout = 60

    @classmethod
    def fail_next(cls, method: str, error: GatewayError) -> None:
        """Make the next call of ``method`` (e.g. ``"send_verify_code"``) raise ``error``."""
        cls._scripted.append((method, error))

    @classmethod
    def expire(cls, phone_number: str) -> int:
        """End every outstanding code of ``phone_number`` as if its lifetime had run out."""
        codes = [c for c in cls._codes.values() if c.phone_number == phone_number and c.live]
        for entry in codes:
            entry.live = False
        return len(codes)

    @classmethod
    def last_code(cls, phone_number: str) -> str | None:
        codes = [code for phone, code in cls.outbox if phone == phone_number]
        return codes[-1] if codes else None

    def __init__(self, *, resend_timeout: int | None = None, delay: float | None = None) -> None:
        """``resend_timeout``: seconds before a resend (60); ``delay``: seconds every call
        waits first (0). Left out, the class-wide values tests may set apply."""
        if resend_timeout is not None:
            self.resend_timeout = resend_timeout
        if delay is not None:
            self.delay = delay
        self._open: set[int] = set()

    async def _enter(self, method: str) -> None:
        if self.delay:
            await asyncio.sleep(self.delay)
        for index, (name, error) in enumerate(self._scripted):
            if name == method:
                del self._scripted[index]
                raise error

    @staticmethod
    def _code_for(phone_number: str) -> str:
        digits = phone_number.lstrip("+")
        if digits.startswith("99966") and len(digits) == 10 and digits[5] != "0":
            return digits[5] * 5
        return f"{secrets.randbelow(100000):05d}"

    def _issue(self, owner: int | str, phone_number: str, code_type: str, code: str) -> SentCode:
        phone_code_hash = secrets.token_hex(8)
        self._codes[phone_code_hash] = _Code(owner, phone_number, code, code_type)
        self.outbox.append((phone_number, code))
        next_type = _CHAIN.get(code_type)
        return SentCode(
            type=code_type,
            phone_code_hash=phone_code_hash,
            length=len(code),
            next_type=next_type,
            timeout=self.resend_timeout if next_type else None,
        )

    def _live(self, owner: int | str, phone_number: str, phone_code_hash: str) -> _Code:
        entry = self._codes.get(phone_code_hash)
        if (
            entry is None
            or not entry.live
            or entry.account_id != owner
            or entry.phone_number != phone_number
        ):
            raise GatewayError(ErrorCode.PHONE_CODE_EXPIRED, telegram_error="PhoneCodeExpiredError")
        return entry

    async def open(self, account_id: int, session: str) -> None:
        await self._enter("open")
        if session in self.logged_out:
            raise AccountUnusable(
                ErrorCode.TELEGRAM_UNAVAILABLE, telegram_error="AuthKeyUnregisteredError"
            )
        self._open.add(account_id)

    async def close(self, account_id: int) -> None:
        self._open.discard(account_id)

    async def close_all(self) -> None:
        self._open.clear()

    def is_open(self, account_id: int) -> bool:
        return account_id in self._open

    def _check_open(self, account_id: int) -> None:
        if account_id not in self._open:
            raise GatewayError(ErrorCode.TELEGRAM_UNAVAILABLE, telegram_error="NOT_CONNECTED")

    async def send_verify_code(self, account_id: int, phone_number: str) -> SentCode:
        self._check_open(account_id)
        await self._enter("send_verify_code")
        digits = phone_number.lstrip("+")
        if digits.startswith("99966") and len(digits) == 10 and digits[6:] in _SEND_ERRORS:
            code, retry_after, name = _SEND_ERRORS[digits[6:]]
            raise GatewayError(code, retry_after=retry_after, telegram_error=name)
        return self._issue(account_id, phone_number, "sms", self._code_for(phone_number))

    async def resend_code(
        self, account_id: int, phone_number: str, phone_code_hash: str
    ) -> SentCode:
        self._check_open(account_id)
        await self._enter("resend_code")
        entry = self._live(account_id, phone_number, phone_code_hash)
        next_type = _CHAIN.get(entry.type)
        if next_type is None:
            raise GatewayError(
                ErrorCode.SEND_CODE_UNAVAILABLE, telegram_error="SendCodeUnavailableError"
            )
        entry.live = False
        return self._issue(account_id, phone_number, next_type, entry.code)

    async def verify_phone(
        self, account_id: int, phone_number: str, phone_code_hash: str, code: str
    ) -> None:
        self._check_open(account_id)
        await self._enter("verify_phone")
        entry = self._live(account_id, phone_number, phone_code_hash)
        if not code:
            raise GatewayError(ErrorCode.PHONE_CODE_EMPTY)
        if code != entry.code:
            entry.attempts += 1
            entry.live = entry.attempts < MAX_ATTEMPTS
            raise GatewayError(ErrorCode.PHONE_CODE_INVALID, telegram_error="PhoneCodeInvalidError")
        entry.live = False

    async def cancel_code(self, account_id: int, phone_number: str, phone_code_hash: str) -> None:
        self._check_open(account_id)
        await self._enter("cancel_code")
        self._live(account_id, phone_number, phone_code_hash).live = False

    async def login_send_code(self, login_id: str, phone_number: str) -> SentCode:
        await self._enter("login_send_code")
        return self._issue(login_id, phone_number, "app", self._code_for(phone_number))

    async def login_sign_in(self, login_id: str, code: str) -> LoginResult:
        await self._enter("login_sign_in")
        entry = next((c for c in self._codes.values() if c.account_id == login_id and c.live), None)
        if entry is None:
            raise GatewayError(ErrorCode.PHONE_CODE_EXPIRED)
        if code != entry.code:
            raise GatewayError(ErrorCode.PHONE_CODE_INVALID)
        entry.live = False
        if entry.phone_number[-4:].startswith("8"):
            self._codes[f"password:{login_id}"] = _Code(login_id, entry.phone_number, "", "pw")
            raise PasswordNeeded()
        return self._result(entry.phone_number)

    async def login_password(self, login_id: str, password: str) -> LoginResult:
        entry = self._codes.pop(f"password:{login_id}", None)
        if entry is None:
            raise GatewayError(ErrorCode.NO_ACTIVE_VERIFICATION)
        if password != "sandbox-password":
            self._codes[f"password:{login_id}"] = entry
            raise GatewayError(ErrorCode.PASSWORD_INVALID)
        return self._result(entry.phone_number)

    @staticmethod
    def _result(phone_number: str) -> LoginResult:
        return LoginResult(
            session=f"fake-session-{phone_number}",
            user_id=int(phone_number.lstrip("+")),
            phone_number=phone_number,
            display_name="Fake sender",
        )

    async def login_abort(self, login_id: str) -> None:
        for entry in self._codes.values():
            if entry.account_id == login_id:
                entry.live = False

    async def log_out(self, session: str) -> None:
        await self._enter("log_out")
        self.logged_out.add(session)

    # The Telegram Passport bot ---------------------------------------------------------------

    async def bot_open(
        self,
        token: str,
        session: str,
        on_passport: Callable[[SharedPassport], Awaitable[None]],
    ) -> str:
        await self._enter("bot_open")
        await self.bot_close()
        self._bot_handler = on_passport
        FakeGateway._bot_handlers.append(on_passport)
        return session or f"fake-bot-session-{token.partition(':')[0]}"

    async def bot_close(self) -> None:
        if self._bot_handler is not None:
            if self._bot_handler in FakeGateway._bot_handlers:
                FakeGateway._bot_handlers.remove(self._bot_handler)
            self._bot_handler = None

    def bot_is_open(self) -> bool:
        return self._bot_handler is not None

    @classmethod
    async def deliver_passport(cls, shared: SharedPassport) -> int:
        """Hand ``shared`` to every open Passport bot, as Telegram would; how many got it."""
        handlers = list(cls._bot_handlers)
        for handler in handlers:
            await handler(shared)
        return len(handlers)
