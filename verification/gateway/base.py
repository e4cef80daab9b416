"""The gateway contract: what the Telegram worker needs from a transport.

Implementations hold connected clients keyed by sender account id. They do transport only: plain
values in, plain dataclasses out, and every failure raised as :class:`GatewayError` with a
protocol error code.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, ClassVar

from ..errors import ErrorCode
from ..passport import SharedPassport

CODE_TYPES = (
    "app",
    "sms",
    "call",
    "flash_call",
    "missed_call",
    "email",
    "fragment_sms",
    "firebase_sms",
    "sms_word",
    "sms_phrase",
)
NEXT_TYPES = ("sms", "call", "flash_call", "missed_call", "fragment_sms")


@dataclass(frozen=True)
class SentCode:
    """What Telegram said about a code it sent (``auth.SentCode``)."""

    type: str
    phone_code_hash: str
    length: int | None = None
    next_type: str | None = None
    timeout: int | None = None
    pattern: str = ""
    prefix: str = ""
    url: str = ""
    beginning: str = ""


@dataclass(frozen=True)
class LoginResult:
    """A signed-in sender account."""

    session: str
    user_id: int
    phone_number: str
    display_name: str


class GatewayError(Exception):
    """A Telegram failure, named by protocol error code.

    ``telegram_error`` keeps Telegram's own error name for the audit log. ``cost`` is what the
    failed step was billed before it failed (``request_cost``, ``remaining_balance``; the
    Gateway API's ``checkSendAbility``), None when nothing was.
    """

    def __init__(
        self,
        code: ErrorCode,
        *,
        retry_after: int | None = None,
        telegram_error: str = "",
        cost: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(telegram_error or code.value)
        self.code = code
        self.retry_after = retry_after
        self.telegram_error = telegram_error or code.value
        self.cost = cost


class PasswordNeeded(Exception):
    """The account being signed in has a two-step verification password."""

    def __init__(self, hint: str = "") -> None:
        super().__init__("password needed")
        self.hint = hint


class AccountUnusable(GatewayError):
    """The sender account's session was revoked or is otherwise dead; it must log in again."""


class TelegramGateway(ABC):
    """Talks to Telegram on behalf of the site's sender accounts.

    Built with the ``GATEWAY_OPTIONS`` setting as keyword arguments (see
    :func:`verification.gateway.gateway_from_settings`).
    """

    #: Constructor options the app fills in from its own settings (``server``,
    #: ``public_key_file``, ``api_id``, ``api_hash``, ``dc_id``, ``request_timeout``) when
    #: ``GATEWAY_OPTIONS`` leaves them out. A gateway lists the ones it takes.
    settings_options: ClassVar[tuple[str, ...]] = ()

    @abstractmethod
    async def open(self, account_id: int, session: str) -> None:
        """Connect sender account ``account_id`` from its saved session; raise if unusable."""

    @abstractmethod
    async def close(self, account_id: int) -> None:
        """Disconnect sender account ``account_id`` (no error if it is not open)."""

    @abstractmethod
    async def close_all(self) -> None:
        """Disconnect every client, including unfinished sign-ins."""

    @abstractmethod
    def is_open(self, account_id: int) -> bool:
        """Whether sender account ``account_id`` is connected through this gateway."""

    @abstractmethod
    async def send_verify_code(self, account_id: int, phone_number: str) -> SentCode:
        """``account.sendVerifyPhoneCode`` for ``phone_number`` (E.164)."""

    @abstractmethod
    async def resend_code(
        self, account_id: int, phone_number: str, phone_code_hash: str
    ) -> SentCode:
        """``auth.resendCode``: deliver the code the next way; its hash replaces the old."""

    @abstractmethod
    async def verify_phone(
        self, account_id: int, phone_number: str, phone_code_hash: str, code: str
    ) -> None:
        """``account.verifyPhone``; returns when the code is right."""

    @abstractmethod
    async def cancel_code(self, account_id: int, phone_number: str, phone_code_hash: str) -> None:
        """``auth.cancelCode``: make the code unusable."""

    @abstractmethod
    async def login_send_code(self, login_id: str, phone_number: str) -> SentCode:
        """Start signing in a new sender account (``auth.sendCode``) on a fresh client."""

    @abstractmethod
    async def login_sign_in(self, login_id: str, code: str) -> LoginResult:
        """Finish with the code; raise :class:`PasswordNeeded` when 2FA is on."""

    @abstractmethod
    async def login_password(self, login_id: str, password: str) -> LoginResult:
        """Finish a sign-in with the two-step verification password."""

    @abstractmethod
    async def login_abort(self, login_id: str) -> None:
        """Drop an unfinished sign-in."""

    @abstractmethod
    async def log_out(self, session: str) -> None:
        """``auth.logOut`` a saved session (for removing a sender account)."""

    # The Telegram Passport bot (optional: a gateway without it leaves Passport off) ----------

    async def bot_open(
        self,
        token: str,
        session: str,
        on_passport: Callable[[SharedPassport], Awaitable[None]],
    ) -> str:
        """Connect the Passport bot from ``session`` (or sign in with ``token``:
        ``auth.importBotAuthorization``), receiving updates; call ``on_passport`` for every
        ``messageActionSecureValuesSentMe``. Returns the session to keep."""
        raise GatewayError(ErrorCode.PASSPORT_UNAVAILABLE, telegram_error="NOT_SUPPORTED")

    async def bot_close(self) -> None:
        """Disconnect the Passport bot (no error if it is not open)."""
        return None

    def bot_is_open(self) -> bool:
        """Whether the Passport bot is connected through this gateway."""
        return False


# What every transport promises about one code -------------------------------------------------


@dataclass(frozen=True)
class CodeDelivery:
    """A code a transport sent: how the visitor is told it was sent (``sent``), the ``handle``
    that names it when it is checked, resent or cancelled (a sender account's
    ``phone_code_hash``, the Gateway API's ``request_id``), and what it cost (Gateway only)."""

    sent: SentCode
    handle: str
    cost: dict[str, Any] | None = None


class CodeTransport(ABC):
    """One verification code's life, as every transport promises it: sender accounts
    (:class:`AccountCodes`) and the Gateway API
    (:class:`verification.gateway.telegram_gateway.GatewayCodes`).
    ``tests/test_gateway_contract.py`` holds each implementation to it. Failures are raised as
    :class:`GatewayError` with a protocol error code."""

    @abstractmethod
    async def send(self, phone_number: str) -> CodeDelivery:
        """Send ``phone_number`` (E.164) a new code."""

    @abstractmethod
    async def resend(self, phone_number: str, handle: str) -> CodeDelivery:
        """Deliver the code again; from then on only the new delivery's handle is usable."""

    @abstractmethod
    async def check(self, phone_number: str, handle: str, code: str) -> None:
        """Return when ``code`` is right; raise PHONE_CODE_INVALID, TOO_MANY_ATTEMPTS or
        PHONE_CODE_EXPIRED otherwise."""

    @abstractmethod
    async def cancel(self, phone_number: str, handle: str) -> None:
        """Make the code unusable."""


class AccountCodes(CodeTransport):
    """The codes of one sender account: ``account.sendVerifyPhoneCode``, ``auth.resendCode``,
    ``account.verifyPhone`` and ``auth.cancelCode`` through a :class:`TelegramGateway`.

    The worker makes the same calls through its lease keeper, which bounds each by the
    request's deadline and the account's lease.
    """

    def __init__(self, gateway: TelegramGateway, account_id: int) -> None:
        self.gateway = gateway
        self.account_id = account_id

    async def send(self, phone_number: str) -> CodeDelivery:
        sent = await self.gateway.send_verify_code(self.account_id, phone_number)
        return CodeDelivery(sent, sent.phone_code_hash)

    async def resend(self, phone_number: str, handle: str) -> CodeDelivery:
        sent = await self.gateway.resend_code(self.account_id, phone_number, handle)
        return CodeDelivery(sent, sent.phone_code_hash)

    async def check(self, phone_number: str, handle: str, code: str) -> None:
        await self.gateway.verify_phone(self.account_id, phone_number, handle, code)

    async def cancel(self, phone_number: str, handle: str) -> None:
        await self.gateway.cancel_code(self.account_id, phone_number, handle)
