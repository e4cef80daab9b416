from __future__ import annotations

import unicodedata
from typing import NamedTuple

import phonenumbers
from django import forms
from django.utils.translation import gettext_lazy as _

from .app_settings import get_config
from .errors import MESSAGES, ErrorCode

TEST_PREFIX = "+99966"


def test_numbers_allowed() -> bool:
    """Telegram's test range is only meaningful on the sandbox or a test DC."""
    config = get_config()
    if config["ALLOW_TEST_NUMBERS"] is not None:
        return config["ALLOW_TEST_NUMBERS"]
    return bool(config["EMBEDDED_SANDBOX"] or config["TELEGRAM_SERVER"])


def parse_phone_number(raw: str) -> tuple[str, str, str]:
    """(E.164, international format, region) for a number typed in any common format.

    Raises ``forms.ValidationError`` with the protocol error code as its ``code``.
    """
    text = raw.strip()
    if text.startswith("00"):
        text = "+" + text[2:]
    digits = "".join(ch for ch in text if ch.isdigit())
    if not digits or len(digits) > 15:
        raise forms.ValidationError(
            MESSAGES[ErrorCode.PHONE_NUMBER_INVALID], code=ErrorCode.PHONE_NUMBER_INVALID
        )
    if text.startswith("+") and ("+" + digits).startswith(TEST_PREFIX) and len(digits) == 10:
        if not test_numbers_allowed() or digits[5] == "0":
            raise forms.ValidationError(
                MESSAGES[ErrorCode.PHONE_NUMBER_INVALID], code=ErrorCode.PHONE_NUMBER_INVALID
            )
        e164 = "+" + digits
        return e164, f"+999 66 {digits[5]} {digits[6:]}", ""
    config = get_config()
    try:
        number = phonenumbers.parse(text, (config.get("DEFAULT_REGION") or "").upper() or None)
    except phonenumbers.NumberParseException:
        number = None
    if number is None or not phonenumbers.is_valid_number(number):
        raise forms.ValidationError(
            MESSAGES[ErrorCode.PHONE_NUMBER_INVALID], code=ErrorCode.PHONE_NUMBER_INVALID
        )
    region = phonenumbers.region_code_for_number(number) or ""
    allowed = [r.upper() for r in config["ALLOWED_REGIONS"]]
    denied = [r.upper() for r in config["DENIED_REGIONS"]]
    if (allowed and region not in allowed) or region in denied:
        raise forms.ValidationError(
            MESSAGES[ErrorCode.PHONE_NUMBER_NOT_ALLOWED], code=ErrorCode.PHONE_NUMBER_NOT_ALLOWED
        )
    return (
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164),
        phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL),
        region,
    )


class PickerRegions(NamedTuple):
    """What the page's country picker offers."""

    #: ``DEFAULT_REGION``; "" lets the page pick by the visitor's language.
    default: str
    #: The regions a number may belong to, space-separated; "" for every region.
    offered: str


def picker_regions() -> PickerRegions:
    """The country picker's first choice and its choices, from ``DEFAULT_REGION``,
    ``ALLOWED_REGIONS`` and ``DENIED_REGIONS``."""
    config = get_config()
    allowed = [region.upper() for region in config["ALLOWED_REGIONS"]]
    denied = {region.upper() for region in config["DENIED_REGIONS"]}
    offered = ""
    if allowed or denied:
        regions = allowed or sorted(phonenumbers.SUPPORTED_REGIONS)
        offered = " ".join(region for region in regions if region not in denied)
    return PickerRegions((config["DEFAULT_REGION"] or "").upper(), offered)


def format_phone_number(e164: str) -> str:
    """International format for a stored E.164 number."""
    if e164.startswith(TEST_PREFIX) and len(e164) == 11:
        return f"+999 66 {e164[6]} {e164[7:]}"
    try:
        number = phonenumbers.parse(e164)
    except phonenumbers.NumberParseException:
        return e164
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


class PhoneForm(forms.Form):
    phone_number = forms.CharField(label=_("Phone number"), max_length=32)

    def clean_phone_number(self) -> str:
        e164, international, region = parse_phone_number(self.cleaned_data["phone_number"])
        self.international = international
        self.region = region
        return e164


class CodeForm(forms.Form):
    code = forms.CharField(label=_("Code"), max_length=64, required=False, strip=True)

    def clean_code(self) -> str:
        # Full-width digits (from some mobile keyboards) become ASCII; spaces and dashes go.
        text = unicodedata.normalize("NFKC", self.cleaned_data["code"])
        code = "".join(ch for ch in text if not ch.isspace() and ch not in "-‐‑–—")
        if not code:
            raise forms.ValidationError(
                MESSAGES[ErrorCode.PHONE_CODE_EMPTY], code=ErrorCode.PHONE_CODE_EMPTY
            )
        return code


class SenderPhoneForm(forms.Form):
    phone_number = forms.CharField(
        label=_("Phone number of the Telegram account"),
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "off", "inputmode": "tel"}),
    )

    def clean_phone_number(self) -> str:
        e164, _international, _region = parse_phone_number(self.cleaned_data["phone_number"])
        return e164


class SenderCodeForm(forms.Form):
    code = forms.CharField(
        label=_("Code Telegram sent to that account"),
        max_length=32,
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "numeric"}),
    )


class SenderPasswordForm(forms.Form):
    password = forms.CharField(
        label=_("Two-step verification password"),
        widget=forms.PasswordInput(render_value=False),
    )


# Display helpers: the human, translated names staff see for the protocol's values.

CODE_TYPE_LABELS = {
    "app": _("Telegram app"),
    "sms": _("SMS"),
    "call": _("Phone call"),
    "flash_call": _("Flash call"),
    "missed_call": _("Missed call"),
    "email": _("Email"),
    "fragment_sms": _("SMS on Fragment"),
    "firebase_sms": _("Firebase SMS"),
    "sms_word": _("Word by SMS"),
    "sms_phrase": _("Phrase by SMS"),
}

ERROR_LABELS = {
    "BAD_MESSAGE": _("Malformed message"),
    "PHONE_NUMBER_INVALID": _("Invalid number"),
    "PHONE_NUMBER_BANNED": _("Number banned by Telegram"),
    "PHONE_NUMBER_FLOOD": _("Too many codes for the number"),
    "PHONE_NUMBER_NOT_ALLOWED": _("Country not allowed"),
    "PHONE_NOT_ON_TELEGRAM": _("Not on Telegram"),
    "FLOOD_WAIT": _("Telegram asked to wait"),
    "RATE_LIMITED": _("Site send limit reached"),
    "PHONE_CODE_EMPTY": _("Empty code"),
    "PHONE_CODE_INVALID": _("Wrong code"),
    "PHONE_CODE_EXPIRED": _("Code expired"),
    "TOO_MANY_ATTEMPTS": _("Too many wrong codes"),
    "RESEND_NOT_AVAILABLE": _("Resend asked too early"),
    "SEND_CODE_UNAVAILABLE": _("No other delivery option"),
    "NO_ACTIVE_VERIFICATION": _("No verification in progress"),
    "NO_SENDER_ACCOUNT": _("No sender account"),
    "TELEGRAM_UNAVAILABLE": _("Telegram unreachable"),
    "INTERNAL": _("Internal error"),
    "LOGIN_REQUIRED": _("Sign-in required"),
    "PASSWORD_INVALID": _("Wrong password"),
}


def code_type_label(value: str | None) -> str:
    """The human name of a code or next type ("" when there is none)."""
    if not value:
        return ""
    return str(CODE_TYPE_LABELS.get(value, value))


def error_label(value: str | None) -> str:
    """The human name of a stable error code; unknown values are shown as they are."""
    if not value:
        return ""
    return str(ERROR_LABELS.get(value, value))


def phone_search_term(term: str) -> str | None:
    """The E.164 number (or its start) a search term means when it is a phone number in any
    common format, such as the admin shows it (``+999 66 2 9005``); else None."""
    text = term.strip()
    if not text or any(not (ch.isdigit() or ch in " +-().") for ch in text):
        return None
    digits = "".join(ch for ch in text if ch.isdigit())
    if len(digits) < 6 or not (text.startswith(("+", "00")) or " " in text or "-" in text):
        return None
    try:
        e164, _international, _region = parse_phone_number(text)
    except forms.ValidationError:
        # Part of a number, or one the site would refuse today: still a number, by its digits.
        return "+" + digits.removeprefix("00") if text.startswith(("+", "00")) else None
    return e164
