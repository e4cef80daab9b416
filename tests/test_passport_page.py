"""The Passport option on the visitor page, and the sandbox inbox's simulated Telegram app (DEBUG).

The browser tests drive both against the real sandbox; these check what the server renders and
answers when Passport is off, and the inbox endpoint's edges.
"""

from __future__ import annotations

import re
from types import SimpleNamespace
from typing import Any

import pytest
from django.test import Client
from django.urls import reverse

from verification import passport, runtime
from verification.passport_services import verification_passport_start

pytestmark = pytest.mark.django_db


@pytest.fixture
def bot(settings: Any) -> passport.PassportBot:
    key = passport.private_key_generate()
    settings.VERIFICATION = {
        **settings.VERIFICATION,
        "PASSPORT_BOT_TOKEN": "700000555:page-test",
        "PASSPORT_PRIVATE_KEY": passport.private_key_pem(key),
    }
    return passport.PassportBot("700000555:page-test", key)


def passport_option(client: Client) -> str:
    html = client.get(reverse("verification:verify")).content.decode()
    match = re.search(r'<div id="passport-option"[^>]*>', html)
    assert match, html
    return match.group(0)


def test_passport_is_hidden_when_no_bot_is_configured(client: Client) -> None:
    assert " hidden" in passport_option(client)


def test_passport_is_offered_when_a_bot_is_configured(client: Client, bot: Any) -> None:
    assert " hidden" not in passport_option(client)


def test_page_strings_for_passport_are_translated(client: Client, bot: Any) -> None:
    html = client.get(reverse("verification:verify"), HTTP_ACCEPT_LANGUAGE="ru").content.decode()
    assert "Поделиться через Telegram Passport" in html
    assert "Ссылка действительна ещё {time}" in html


class FakeSandbox:
    def __init__(self, error: Exception | None = None) -> None:
        self.shared: list[tuple[str, str]] = []
        self.error = error

    def passport_share(self, phone: str, url: str) -> str:
        if self.error:
            raise self.error
        self.shared.append((phone, url))
        return "shared"

    def passport_summary(self, phone: str, url: str) -> dict[str, object]:
        return {"bot": "@sandboxbot", "asks": ["phone_number"], "phone": None, "for": phone}


@pytest.fixture
def sandbox(settings: Any, bot: Any, monkeypatch: pytest.MonkeyPatch) -> FakeSandbox:
    settings.DEBUG = True
    settings.VERIFICATION = {**settings.VERIFICATION, "EMBEDDED_SANDBOX": True}
    fake = FakeSandbox()
    monkeypatch.setattr(runtime, "current", lambda: SimpleNamespace(sandbox=fake))
    return fake


def test_inbox_lists_open_requests_and_shares_a_number(
    client: Client, sandbox: FakeSandbox, bot: passport.PassportBot
) -> None:
    waiting, _ = verification_passport_start(owner="visitor", user=None, nonce="n" * 32)
    other, _ = verification_passport_start(owner="other", user=None, nonce="m" * 32)
    url = reverse("verification:sandbox_passport")

    listed = client.get(url).json()["requests"]
    assert [item["id"] for item in listed] == [str(other.pk), str(waiting.pk)]
    assert 595 <= listed[0]["expires_in"] <= 600
    # Each with the form the app of the number asked about would show.
    form = client.get(url, {"phone": "+999 66 3 4321"}).json()["requests"][0]["form"]
    assert form == {
        "bot": "@sandboxbot",
        "asks": ["phone_number"],
        "phone": None,
        "for": "+999 66 3 4321",
    }

    answer = client.post(url, {"id": str(waiting.pk), "phone": "+999 66 3 4321"})
    assert answer.json() == {"shared": True, "outcome": "shared"}
    expected = passport.request_url(bot_id=700000555, public_key=bot.public_key, nonce="n" * 32)
    assert sandbox.shared == [("+999 66 3 4321", expected)]


def test_inbox_refuses_a_request_that_is_not_open(client: Client, sandbox: FakeSandbox) -> None:
    answer = client.post(reverse("verification:sandbox_passport"), {"id": "nope"})
    assert answer.status_code == 404
    assert answer.json() == {"error": "REQUEST_NOT_WAITING"}
    assert sandbox.shared == []


def test_inbox_reports_a_number_the_sandbox_refuses(client: Client, sandbox: FakeSandbox) -> None:
    waiting, _ = verification_passport_start(owner="visitor", user=None, nonce="k" * 32)
    sandbox.error = ValueError("not a number")
    answer = client.post(reverse("verification:sandbox_passport"), {"id": str(waiting.pk)})
    assert answer.status_code == 400
    assert answer.json() == {"error": "PHONE_NUMBER_INVALID"}


def test_inbox_endpoint_exists_only_with_debug_and_the_sandbox(
    client: Client, settings: Any, sandbox: FakeSandbox
) -> None:
    url = reverse("verification:sandbox_passport")
    settings.DEBUG = False
    assert client.get(url).status_code == 404
    settings.DEBUG = True
    settings.VERIFICATION = {**settings.VERIFICATION, "EMBEDDED_SANDBOX": False}
    assert client.get(url).status_code == 404
