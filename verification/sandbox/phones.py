"""Phone-number rules of the sandbox: normalisation, test numbers and scenario numbers.

``+99966XYYYY`` mirrors Telegram's test DCs: X (1-9) is the digit repeated to form the code.
Scenario numbers are test numbers whose last four digits are ``900N``; numbers whose last four
digits start with ``8`` have the 2FA password ``sandbox-password``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TEST_NUMBER = re.compile(r"^99966([1-9])(\d{4})$")
DEFAULT_2FA_PASSWORD = "sandbox-password"

# What each delivery type is called in DeliveredCode.code_type and in chains below.
CODE_TYPES = (
    "app",
    "sms",
    "call",
    "flash_call",
    "missed_call",
    "fragment_sms",
    "sms_word",
    "sms_phrase",
)

DEFAULT_CHAIN = ("sms", "call")

# Scenario tail → (error on send, delivery chain). The first chain entry is what the send
# delivers; each auth.resendCode moves one step; past the end → SEND_CODE_UNAVAILABLE.
SCENARIOS: dict[str, tuple[tuple[int, str] | None, tuple[str, ...]]] = {
    "9001": ((420, "FLOOD_WAIT_30"), DEFAULT_CHAIN),
    "9002": ((400, "PHONE_NUMBER_INVALID"), DEFAULT_CHAIN),
    "9003": ((400, "PHONE_NUMBER_BANNED"), DEFAULT_CHAIN),
    "9004": (None, ("app", "sms", "call")),
    "9005": (None, ("missed_call", "sms", "call")),
    "9006": (None, ("fragment_sms",)),
    "9007": (None, ("sms_word", "sms")),
    "9008": (None, ("call",)),
}

MISSED_CALL_PREFIX = "+9996600"
FRAGMENT_URL = "https://fragment.com/number/{digits}/code"
SMS_WORDS = (
    "apple",
    "breeze",
    "castle",
    "dolphin",
    "ember",
    "falcon",
    "garden",
    "harbor",
    "island",
    "jasmine",
)


# Telegram Passport scenario tails: what the user's Passport holds, and how their (simulated)
# Telegram app answers an authorization form.
PASSPORT_HOLDS_PHONE = "holds_phone"  # its own number, already verified
PASSPORT_EMPTY = "empty"  # no phone: the app verifies the number first (a code in the inbox)
PASSPORT_DECLINES = "declines"  # the app declines the form: the bot receives nothing
PASSPORT_LATE = "late"  # the app authorizes only after the request has expired
PASSPORT_SCENARIOS = {
    "9011": PASSPORT_HOLDS_PHONE,
    "9012": PASSPORT_EMPTY,
    "9013": PASSPORT_DECLINES,
    "9014": PASSPORT_LATE,
}


def passport_scenario(digits: str) -> str | None:
    """The Passport scenario of a number (None: an ordinary number, an empty Passport)."""
    match = TEST_NUMBER.match(digits)
    return PASSPORT_SCENARIOS.get(match.group(2)) if match else None


class InvalidPhone(ValueError):
    """Not something Telegram would accept as a phone number."""


def normalize_phone(raw: str) -> str:
    """Digits only, as Telethon sends them; InvalidPhone unless 7-15 digits without a leading 0."""
    digits = re.sub(r"[\s()\-.]", "", raw or "")
    if digits.startswith("+"):
        digits = digits[1:]
    if not digits.isdigit() or not 7 <= len(digits) <= 15 or digits.startswith("0"):
        raise InvalidPhone(raw)
    return digits


def e164(digits: str) -> str:
    return "+" + digits


@dataclass(frozen=True)
class PhoneRules:
    """Everything the sandbox decides from the number alone."""

    digits: str
    test_digit: str | None  # X for +99966XYYYY
    send_error: tuple[int, str] | None
    chain: tuple[str, ...]
    default_password: str | None

    @classmethod
    def for_phone(cls, digits: str) -> PhoneRules:
        match = TEST_NUMBER.match(digits)
        if not match:
            return cls(digits, None, None, DEFAULT_CHAIN, None)
        test_digit, tail = match.groups()
        send_error, chain = SCENARIOS.get(tail, (None, DEFAULT_CHAIN))
        password = DEFAULT_2FA_PASSWORD if tail.startswith("8") else None
        return cls(digits, test_digit, send_error, chain, password)
