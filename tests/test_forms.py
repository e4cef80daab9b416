"""Phone numbers as visitors type them: parsing, regions and Telegram's test range."""

from __future__ import annotations

import pytest
from django import forms

from verification import forms as verification_forms
from verification.forms import PhoneForm, format_phone_number, parse_phone_number

# Real-world numbers (valid for phonenumbers), as people type them.
COMMON_FORMATS = [
    ("+7 (912) 345-67-89", "+79123456789", "+7 912 345-67-89", "RU"),
    ("+79123456789", "+79123456789", "+7 912 345-67-89", "RU"),
    ("+44 20 7946 0958", "+442079460958", "+44 20 7946 0958", "GB"),
    ("0044 20 7946 0958", "+442079460958", "+44 20 7946 0958", "GB"),
    ("+1-202-555-0143", "+12025550143", "+1 202-555-0143", "US"),
    ("  +1 (650) 253.0000  ", "+16502530000", "+1 650-253-0000", "US"),
    ("+49 30 901820", "+4930901820", "+49 30 901820", "DE"),
]


@pytest.fixture
def configure(settings):
    """``configure(**verification)``: a production-like config (no sandbox) with these keys."""

    def apply(**verification):
        settings.VERIFICATION = {
            "TELEGRAM_API_ID": 123456,
            "TELEGRAM_API_HASH": "0123456789abcdef",
            "EMBEDDED_SANDBOX": False,
            "TELEGRAM_SERVER": "",
            **verification,
        }

    apply()
    return apply


def error_code(raw):
    with pytest.raises(forms.ValidationError) as info:
        parse_phone_number(raw)
    return info.value.code


@pytest.mark.parametrize(("raw", "e164", "international", "region"), COMMON_FORMATS)
def test_common_formats(configure, raw, e164, international, region):
    assert parse_phone_number(raw) == (e164, international, region)


@pytest.mark.parametrize(
    "raw",
    [
        "",
        "   ",
        "hello",
        "+1 234",
        "+44 7700 900123",  # reserved for drama, never assigned
        "+1234567890123456",  # longer than E.164 allows
        "912 345 67 89",  # no country code and no DEFAULT_REGION
    ],
)
def test_invalid_numbers(configure, raw):
    assert error_code(raw) == "PHONE_NUMBER_INVALID"


def test_default_region_reads_national_numbers(configure):
    configure(DEFAULT_REGION="RU")
    assert parse_phone_number("8 (912) 345-67-89") == ("+79123456789", "+7 912 345-67-89", "RU")
    # A country code still wins over the default region.
    assert parse_phone_number("+44 20 7946 0958")[2] == "GB"


def test_allowed_regions(configure):
    configure(ALLOWED_REGIONS=["gb", "DE"])
    assert parse_phone_number("+44 20 7946 0958")[2] == "GB"
    assert parse_phone_number("+49 30 901820")[2] == "DE"
    assert error_code("+7 912 345-67-89") == "PHONE_NUMBER_NOT_ALLOWED"


def test_denied_regions(configure):
    configure(DENIED_REGIONS=["RU"])
    assert error_code("+7 (912) 345-67-89") == "PHONE_NUMBER_NOT_ALLOWED"
    assert parse_phone_number("+1-202-555-0143")[2] == "US"


def test_an_invalid_number_is_invalid_even_in_a_denied_region(configure):
    configure(DENIED_REGIONS=["GB"])
    assert error_code("+44 7700 900123") == "PHONE_NUMBER_INVALID"


@pytest.mark.parametrize(
    ("verification", "allowed"),
    [
        ({}, False),
        ({"EMBEDDED_SANDBOX": True}, True),
        ({"TELEGRAM_SERVER": "127.0.0.1:8443"}, True),
        ({"ALLOW_TEST_NUMBERS": True}, True),
        ({"ALLOW_TEST_NUMBERS": False, "EMBEDDED_SANDBOX": True}, False),
        ({"ALLOW_TEST_NUMBERS": False, "TELEGRAM_SERVER": "127.0.0.1:8443"}, False),
    ],
)
def test_when_test_numbers_are_allowed(configure, verification, allowed):
    configure(**verification)
    # Imported through the module: pytest would collect a bare ``test_numbers_allowed``.
    assert verification_forms.test_numbers_allowed() is allowed


@pytest.mark.parametrize("raw", ["+9996621234", "+999 66 2 1234", "00999 66 2 1234"])
def test_test_range_accepted_on_the_sandbox(configure, raw):
    configure(EMBEDDED_SANDBOX=True)
    assert parse_phone_number(raw) == ("+9996621234", "+999 66 2 1234", "")


def test_test_range_accepted_on_a_test_server(configure):
    configure(TELEGRAM_SERVER="127.0.0.1:8443")
    assert parse_phone_number("+999 66 3 9005")[0] == "+9996639005"


def test_test_range_accepted_when_allowed_explicitly(configure):
    configure(ALLOW_TEST_NUMBERS=True)
    assert parse_phone_number("+9996671234")[0] == "+9996671234"


def test_test_range_refused_on_real_telegram(configure):
    assert error_code("+9996621234") == "PHONE_NUMBER_INVALID"
    configure(EMBEDDED_SANDBOX=True, ALLOW_TEST_NUMBERS=False)
    assert error_code("+9996621234") == "PHONE_NUMBER_INVALID"


def test_test_range_needs_a_code_digit(configure):
    # +99966 0 YYYY has no code digit (X must be 1-9).
    configure(ALLOW_TEST_NUMBERS=True)
    assert error_code("+9996601234") == "PHONE_NUMBER_INVALID"


def test_format_phone_number(configure):
    assert format_phone_number("+79123456789") == "+7 912 345-67-89"
    assert format_phone_number("+9996621234") == "+999 66 2 1234"


def test_phone_form_cleans_to_e164(configure):
    form = PhoneForm({"phone_number": "0044 20 7946 0958"})
    assert form.is_valid(), form.errors
    assert form.cleaned_data["phone_number"] == "+442079460958"
    assert form.international == "+44 20 7946 0958"
    assert form.region == "GB"


@pytest.mark.parametrize(
    ("verification", "raw", "code"),
    [
        ({}, "not a number", "PHONE_NUMBER_INVALID"),
        ({}, "+9996621234", "PHONE_NUMBER_INVALID"),
        ({"ALLOWED_REGIONS": ["US"]}, "+44 20 7946 0958", "PHONE_NUMBER_NOT_ALLOWED"),
    ],
)
def test_phone_form_errors_carry_the_protocol_code(configure, verification, raw, code):
    configure(**verification)
    form = PhoneForm({"phone_number": raw})
    assert not form.is_valid()
    error = form.errors.as_data()["phone_number"][0]
    assert error.code == code
    assert error.messages[0]


def test_phone_form_requires_a_number(configure):
    form = PhoneForm({"phone_number": ""})
    assert not form.is_valid()
    assert form.errors.as_data()["phone_number"][0].code == "required"


def test_lower_case_default_and_allowed_regions(settings):
    from verification.forms import parse_phone_number

    settings.VERIFICATION = {
        **settings.VERIFICATION,
        "DEFAULT_REGION": "gb",
        "ALLOWED_REGIONS": ["gb"],
    }
    e164, _, region = parse_phone_number("020 7946 0958")
    assert (e164, region) == ("+442079460958", "GB")
