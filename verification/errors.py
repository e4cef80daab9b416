"""Stable error codes of WebSocket protocol v1 and their human, translated messages."""

from __future__ import annotations

from enum import StrEnum

from django.utils.translation import gettext_lazy as _


class ErrorCode(StrEnum):
    BAD_MESSAGE = "BAD_MESSAGE"
    PHONE_NUMBER_INVALID = "PHONE_NUMBER_INVALID"
    PHONE_NUMBER_BANNED = "PHONE_NUMBER_BANNED"
    PHONE_NUMBER_FLOOD = "PHONE_NUMBER_FLOOD"
    FLOOD_WAIT = "FLOOD_WAIT"
    RATE_LIMITED = "RATE_LIMITED"
    PHONE_CODE_EMPTY = "PHONE_CODE_EMPTY"
    PHONE_CODE_INVALID = "PHONE_CODE_INVALID"
    PHONE_CODE_EXPIRED = "PHONE_CODE_EXPIRED"
    TOO_MANY_ATTEMPTS = "TOO_MANY_ATTEMPTS"
    RESEND_NOT_AVAILABLE = "RESEND_NOT_AVAILABLE"
    SEND_CODE_UNAVAILABLE = "SEND_CODE_UNAVAILABLE"
    NO_ACTIVE_VERIFICATION = "NO_ACTIVE_VERIFICATION"
    NO_SENDER_ACCOUNT = "NO_SENDER_ACCOUNT"
    TELEGRAM_UNAVAILABLE = "TELEGRAM_UNAVAILABLE"
    INTERNAL = "INTERNAL"
    # Additions to protocol v1.
    LOGIN_REQUIRED = "LOGIN_REQUIRED"
    SESSION_REQUIRED = "SESSION_REQUIRED"
    PHONE_NUMBER_NOT_ALLOWED = "PHONE_NUMBER_NOT_ALLOWED"
    PASSWORD_INVALID = "PASSWORD_INVALID"
    PASSPORT_UNAVAILABLE = "PASSPORT_UNAVAILABLE"
    PASSPORT_REJECTED = "PASSPORT_REJECTED"
    PHONE_NOT_ON_TELEGRAM = "PHONE_NOT_ON_TELEGRAM"
    CHALLENGE_REQUIRED = "CHALLENGE_REQUIRED"
    CHALLENGE_FAILED = "CHALLENGE_FAILED"


MESSAGES = {
    ErrorCode.BAD_MESSAGE: _("The page sent a message the server does not understand."),
    ErrorCode.PHONE_NUMBER_INVALID: _(
        "This phone number is not valid. Check it and include the country code."
    ),
    ErrorCode.PHONE_NUMBER_BANNED: _("Telegram does not accept this phone number."),
    ErrorCode.PHONE_NUMBER_FLOOD: _(
        "Too many codes were requested for this number. Please try again later."
    ),
    ErrorCode.FLOOD_WAIT: _("Telegram asks us to wait before sending another code."),
    ErrorCode.RATE_LIMITED: _("Too many codes were requested. Please wait a while."),
    ErrorCode.PHONE_CODE_EMPTY: _("Enter the code you received."),
    ErrorCode.PHONE_CODE_INVALID: _("That code is not right. Check it and try again."),
    ErrorCode.PHONE_CODE_EXPIRED: _("This code has expired. Request a new one."),
    ErrorCode.TOO_MANY_ATTEMPTS: _("Too many wrong codes. Start again with a new code."),
    ErrorCode.RESEND_NOT_AVAILABLE: _("You can ask for a new code a little later."),
    ErrorCode.SEND_CODE_UNAVAILABLE: _(
        "Telegram has no other way to deliver the code to this number."
    ),
    ErrorCode.NO_ACTIVE_VERIFICATION: _("There is no verification in progress. Start again."),
    ErrorCode.NO_SENDER_ACCOUNT: _(
        "Verification is not available right now: the site has no Telegram account connected."
    ),
    ErrorCode.TELEGRAM_UNAVAILABLE: _("Telegram cannot be reached right now. Please try again."),
    ErrorCode.INTERNAL: _("Something went wrong on our side. Please try again."),
    ErrorCode.LOGIN_REQUIRED: _("Sign in to verify a phone number."),
    ErrorCode.SESSION_REQUIRED: _("Reload the page to start a verification."),
    ErrorCode.PHONE_NUMBER_NOT_ALLOWED: _("Numbers from this country cannot be verified here."),
    ErrorCode.PASSWORD_INVALID: _("That password is not right."),
    ErrorCode.PASSPORT_UNAVAILABLE: _("Telegram Passport is not available on this site."),
    ErrorCode.PASSPORT_REJECTED: _(
        "Telegram sent data we cannot accept. Please share your number again."
    ),
    ErrorCode.PHONE_NOT_ON_TELEGRAM: _(
        "This number is not on Telegram, so we cannot send it a code there."
    ),
    ErrorCode.CHALLENGE_REQUIRED: _(
        "Your browser needs to pass a quick check before we send another code."
    ),
    ErrorCode.CHALLENGE_FAILED: _(
        "The browser check did not pass or took too long. Send the code again."
    ),
}


#: What a ``RATE_LIMITED`` error's ``limit`` field names: the limit that was spent.
LIMIT_MESSAGES = {
    "phone": _("Too many codes were requested for this number. Please wait a while."),
    "session": _("Too many codes were requested from this browser. Please wait a while."),
    "address": _("Too many codes were requested from your network. Please wait a while."),
    "user": _("Too many codes were requested for your account. Please wait a while."),
    "site": _("The site is sending too many codes right now. Please wait a while."),
}


def error_message(code: ErrorCode, limit: str | None = None) -> str:
    """The visitor's translated message for ``code`` (and, when rate limited, its ``limit``)."""
    if code is ErrorCode.RATE_LIMITED and limit in LIMIT_MESSAGES:
        return str(LIMIT_MESSAGES[limit])
    return str(MESSAGES[code])


class VerificationError(Exception):
    """A failure the visitor is told about with a stable protocol error code.

    ``limit`` names, on ``RATE_LIMITED``, which limit was spent (a key of :data:`LIMIT_MESSAGES`).
    """

    def __init__(
        self, code: ErrorCode, *, retry_after: int | None = None, limit: str | None = None
    ) -> None:
        super().__init__(code.value)
        self.code = code
        self.retry_after = retry_after
        self.limit = limit

    @property
    def message(self) -> str:
        return error_message(self.code, self.limit)
