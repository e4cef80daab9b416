"""How the app builds its gateway: the GATEWAY class with GATEWAY_OPTIONS, the rest derived from
the app's settings."""

from __future__ import annotations

import pytest

from verification.gateway import gateway_from_settings
from verification.gateway.fake import FakeGateway
from verification.gateway.telethon_gateway import TelethonGateway


def test_telethon_options_default_to_the_app_settings(settings, telegram_sandbox, tmp_path):
    key = tmp_path / "sandbox.pem"
    key.write_text(telegram_sandbox.public_key_pem)
    settings.VERIFICATION = {
        "TELEGRAM_SERVER": telegram_sandbox.address,
        "TELEGRAM_SERVER_PUBLIC_KEY": str(key),
        "TELEGRAM_API_ID": 7,
        "TELEGRAM_API_HASH": "hash",
        "TELEGRAM_SERVER_DC_ID": 3,
        "REQUEST_TIMEOUT": 12,
    }
    gateway = gateway_from_settings()
    assert isinstance(gateway, TelethonGateway)
    assert (gateway.server, gateway.api_id, gateway.api_hash) == (
        telegram_sandbox.address,
        7,
        "hash",
    )
    assert (gateway.dc_id, gateway.request_timeout) == (3, 12)


def test_gateway_options_win_over_the_app_settings(settings):
    settings.VERIFICATION = {
        "TELEGRAM_SERVER": "127.0.0.1:1",
        "REQUEST_TIMEOUT": 12,
        "GATEWAY_OPTIONS": {"server": "127.0.0.1:2", "request_timeout": 3},
    }
    gateway = gateway_from_settings()
    assert (gateway.server, gateway.request_timeout) == ("127.0.0.1:2", 3)


def test_the_embedded_sandbox_address_overrides_the_settings(settings):
    settings.VERIFICATION = {"GATEWAY_OPTIONS": {"server": "127.0.0.1:2"}}
    assert gateway_from_settings(server="127.0.0.1:3").server == "127.0.0.1:3"


def test_the_fake_gets_its_own_options_and_nothing_else(settings):
    settings.VERIFICATION = {
        "GATEWAY": "verification.gateway.fake.FakeGateway",
        "TELEGRAM_SERVER": "127.0.0.1:1",
        "GATEWAY_OPTIONS": {"resend_timeout": 5},
    }
    gateway = gateway_from_settings(server="127.0.0.1:3")
    assert isinstance(gateway, FakeGateway)
    assert gateway.resend_timeout == 5


def test_the_fake_refuses_options_it_does_not_know():
    with pytest.raises(TypeError, match="server"):
        FakeGateway(server="127.0.0.1:1")
