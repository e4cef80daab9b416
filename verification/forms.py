from __future__ import annotations

import unicodedata

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
