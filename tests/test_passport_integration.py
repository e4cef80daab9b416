"""Telegram Passport end to end: WebSocket → consumer → worker's bot (real Telethon, receiving
updates) ← sandbox acting as the visitor's Telegram app, over TCP."""

from __future__ import annotations

import asyncio
import itertools
import logging
import secrets

import pytest

from verification import passport
from verification.db import db
from verification.models import PassportBot, PhoneVerification, VerificationEvent
from verification.sandbox.passport import Tampering

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

_bot_ids = itertools.count(700_000_100 + secrets.randbelow(10_000) * 10)


@pytest.fixture
def passport_settings(sandbox_settings, settings, telegram_sandbox):
    """The embedded worker on Telethon, with a Passport bot registered in the sandbox."""
    key = passport.private_key_generate()
    token = f"{next(_bot_ids)}:test-{secrets.token_hex(4)}"
    telegram_sandbox.add_bot(token, public_key_pem=passport.public_key_pem(key))
    settings.VERIFICATION = {
        **settings.VERIFICATION,
        "GATEWAY": "verification.gateway.telethon_gateway.TelethonGateway",
        "EMBEDDED_WORKER": True,
        "ALLOW_TEST_NUMBERS": None,
        "REQUEST_TIMEOUT": 10,
        "PASSPORT_BOT_TOKEN": token,
        "PASSPORT_PRIVATE_KEY": passport.private_key_pem(key),
    }
    return settings


async def bot_signed_in(timeout: float = 15) -> None:
    async def signed_in() -> bool:
        return await db(PassportBot.objects.filter(signed_in_at__isnull=False).exists)()

    async with asyncio.timeout(timeout):
        while not await signed_in():
            await asyncio.sleep(0.05)


async def request(open_tab, browser_session):
    tab, _ = await open_tab(await browser_session())
    await tab.send(type="passport_start")
    asked = await tab.receive_until("passport_request")
    await bot_signed_in()
    return tab, asked


async def events(verification_id):
    return await db(
        lambda: list(
            VerificationEvent.objects.filter(verification_id=verification_id).values_list(
                "kind", "data"
            )
        )
    )()


async def test_a_shared_number_turns_the_page_verified(
    passport_settings, open_tab, browser_session, telegram_sandbox
):
    tab, asked = await request(open_tab, browser_session)
    assert asked["url"].startswith("tg://resolve?domain=telegrampassport&bot_id=")
    assert asked["qr"].startswith("<svg")
    assert 0 < asked["expires_in"] <= 600
    snapshot = asked["verification"]
    assert (snapshot["method"], snapshot["status"]) == ("passport", "waiting")

    await asyncio.to_thread(telegram_sandbox.passport_share, "+9996631234", asked["url"])
    received = await tab.receive_until("state")
    assert received["verification"]["status"] == "received"
    verified = await tab.receive_until("verified")
    assert verified["verification"]["phone_number"] == "+999 66 3 1234"
    assert verified["verification"]["method"] == "passport"
    row = await db(PhoneVerification.objects.get)(pk=snapshot["id"])
    assert (row.phone_number, row.method, row.status) == ("+9996631234", "passport", "verified")


async def test_a_reused_nonce_is_an_event_and_changes_nothing(
    passport_settings, open_tab, browser_session, telegram_sandbox
):
    tab, asked = await request(open_tab, browser_session)
    await asyncio.to_thread(telegram_sandbox.passport_share, "+9996631235", asked["url"])
    await tab.receive_until("verified")
    await asyncio.to_thread(telegram_sandbox.passport_share, "+9996639999", asked["url"])
    verification_id = asked["verification"]["id"]
    async with asyncio.timeout(10):
        while ("passport_rejected", {"reason": "NONCE_REUSED", "detail": ""}) not in await events(
            verification_id
        ):
            await asyncio.sleep(0.05)
    row = await db(PhoneVerification.objects.get)(pk=verification_id)
    assert (row.phone_number, row.status) == ("+9996631235", "verified")


async def test_tampered_credentials_are_logged_and_the_request_keeps_waiting(
    passport_settings, open_tab, browser_session, telegram_sandbox, caplog
):
    caplog.set_level(logging.WARNING, logger="verification.passport")
    tab, asked = await request(open_tab, browser_session)
    await asyncio.to_thread(
        telegram_sandbox.passport_share,
        "+9996631236",
        asked["url"],
        tampering=Tampering(flip_data_byte=5),
    )
    async with asyncio.timeout(10):
        while "HASH_MISMATCH" not in caplog.text:
            await asyncio.sleep(0.05)
    assert await tab.nothing()
    # The genuine share still works afterwards.
    await asyncio.to_thread(telegram_sandbox.passport_share, "+9996631236", asked["url"])
    verified = await tab.receive_until("verified")
    assert verified["verification"]["phone_number"] == "+999 66 3 1236"


async def test_two_visitors_each_get_only_their_own_result(
    passport_settings, open_tab, browser_session, telegram_sandbox
):
    first, first_asked = await request(open_tab, browser_session)
    second, second_asked = await request(open_tab, browser_session)
    await asyncio.gather(
        asyncio.to_thread(telegram_sandbox.passport_share, "+9996631001", first_asked["url"]),
        asyncio.to_thread(telegram_sandbox.passport_share, "+9996631002", second_asked["url"]),
    )
    one = await first.receive_until("verified")
    two = await second.receive_until("verified")
    assert one["verification"]["phone_number"] == "+999 66 3 1001"
    assert two["verification"]["phone_number"] == "+999 66 3 1002"
    assert await first.nothing() and await second.nothing()


async def test_passport_is_off_unless_configured(
    sandbox_settings, settings, open_tab, browser_session
):
    settings.VERIFICATION = {**settings.VERIFICATION, "PASSPORT_BOT_TOKEN": ""}
    tab, _ = await open_tab(await browser_session())
    await tab.send(type="passport_start")
    error = await tab.receive_until("error")
    assert error["code"] == "PASSPORT_UNAVAILABLE"


async def test_a_declined_form_leaves_the_request_waiting(
    passport_settings, open_tab, browser_session, telegram_sandbox
):
    tab, asked = await request(open_tab, browser_session)
    # +99966X9013: the scenario user whose app declines the form.
    outcome = await asyncio.to_thread(telegram_sandbox.passport_share, "+9996639013", asked["url"])
    assert outcome == "declined"
    assert await tab.nothing()
    row = await db(PhoneVerification.objects.get)(pk=asked["verification"]["id"])
    assert (row.status, row.phone_number) == ("waiting", "")


async def test_a_form_answered_after_the_request_expired_verifies_nothing(
    passport_settings, open_tab, browser_session, telegram_sandbox
):
    passport_settings.VERIFICATION = {
        **passport_settings.VERIFICATION,
        "PASSPORT_EXPIRES_AFTER": 1,
    }
    telegram_sandbox.server.passport_late_delay = 2.0
    try:
        tab, asked = await request(open_tab, browser_session)
        # +99966X9014: the scenario user whose app authorizes once the request has expired.
        outcome = await asyncio.to_thread(
            telegram_sandbox.passport_share, "+9996639014", asked["url"]
        )
        assert outcome == "late"
        verification_id = asked["verification"]["id"]
        async with asyncio.timeout(10):
            while not any(kind == "passport_rejected" for kind, _ in await events(verification_id)):
                await asyncio.sleep(0.05)
    finally:
        telegram_sandbox.server.passport_late_delay = 660.0
    rejected = [data for kind, data in await events(verification_id) if kind == "passport_rejected"]
    assert rejected[0]["reason"] in {"REQUEST_EXPIRED", "NONCE_REUSED"}
    row = await db(PhoneVerification.objects.get)(pk=verification_id)
    assert (row.status, row.phone_number) == ("expired", "")
