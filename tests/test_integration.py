"""The whole path: WebSocket → consumer → channel layer → worker → real Telethon → sandbox (TCP)."""

from __future__ import annotations

import asyncio

import pytest

from verification.errors import ErrorCode
from verification.gateway import GatewayError, gateway_from_settings
from verification.models import PhoneVerification
from verification.sandbox import SandboxThread

pytestmark = [
    pytest.mark.django_db(transaction=True),
    pytest.mark.integration,
]


@pytest.fixture(autouse=True)
def telethon_settings(sandbox_settings, settings):
    """The embedded worker on the real Telethon gateway, pointed at the plugin's sandbox."""
    settings.VERIFICATION = {
        **settings.VERIFICATION,
        "GATEWAY": "verification.gateway.telethon_gateway.TelethonGateway",
        "EMBEDDED_WORKER": True,
        "ALLOW_TEST_NUMBERS": None,
        "REQUEST_TIMEOUT": 10,
    }
    return settings


async def send(open_tab, browser_session, phone):
    tab, state = await open_tab(await browser_session())
    assert state["verification"] is None
    await tab.send(type="send_code", phone_number=phone)
    return tab


async def test_send_resend_verify(sandbox_sender, open_tab, browser_session, telegram_sandbox):
    tab = await send(open_tab, browser_session, "+999 66 2 1234")
    sent = await tab.receive_until("code_sent")
    assert sent["verification"]["code"] == {"type": "sms", "length": 5}
    assert sent["verification"]["next_type"] == "call"
    await tab.receive_until("resend_available", wait=5)
    await tab.send(type="resend")
    resent = await tab.receive_until("code_sent")
    assert resent["verification"]["code"]["type"] == "call"
    assert resent["verification"]["next_type"] is None
    await tab.send(type="verify", code="11111")
    wrong = await tab.receive_until("error")
    assert wrong["code"] == "PHONE_CODE_INVALID"
    assert wrong["verification"]["attempts_left"] == 4
    await tab.send(type="verify", code=telegram_sandbox.last_code("+9996621234"))
    verified = await tab.receive_until("verified")
    assert verified["verification"]["status"] == "verified"


async def test_send_cancel_makes_the_code_useless(
    sandbox_sender, open_tab, browser_session, telegram_sandbox
):
    tab = await send(open_tab, browser_session, "+9996631234")
    sent = await tab.receive_until("code_sent")
    await tab.send(type="cancel")
    await tab.receive_until("cancelled")
    row = await PhoneVerification.objects.aget(pk=sent["verification"]["id"])
    # The worker called auth.cancelCode: the sandbox now refuses that hash.
    gateway = gateway_from_settings()
    await gateway.open(sandbox_sender.pk, sandbox_sender.session)
    try:
        # Even the right code is refused once the worker has called auth.cancelCode (it does
        # so right after pushing `cancelled`; one try, so a success cannot hide behind a retry).
        await asyncio.sleep(0.5)
        with pytest.raises(GatewayError) as refused:
            await gateway.verify_phone(
                sandbox_sender.pk, row.phone_number, row.phone_code_hash, "33333"
            )
        assert refused.value.code is ErrorCode.PHONE_CODE_EXPIRED
    finally:
        await gateway.close_all()


@pytest.mark.parametrize(
    ("phone", "error", "retry_after"),
    [
        ("+9996619001", "FLOOD_WAIT", 30),
        ("+9996619002", "PHONE_NUMBER_INVALID", None),
        ("+9996619003", "PHONE_NUMBER_BANNED", None),
    ],
)
async def test_send_scenarios(sandbox_sender, open_tab, browser_session, phone, error, retry_after):
    tab = await send(open_tab, browser_session, phone)
    frame = await tab.receive_until("error")
    assert frame["code"] == error
    assert frame.get("retry_after") == retry_after
    assert frame["verification"]["status"] == "failed"


@pytest.mark.parametrize(
    ("phone", "code", "expected", "code_to_type"),
    [
        ("+9996619004", {"type": "app", "length": 5}, "sms", "11111"),
        ("+9996629005", None, None, "2222"),
        ("+9996619006", None, None, "11111"),
        ("+9996619007", None, None, None),
        ("+9996619008", {"type": "call", "length": 5}, None, "11111"),
    ],
)
async def test_code_type_scenarios(
    sandbox_sender, open_tab, browser_session, telegram_sandbox, phone, code, expected, code_to_type
):
    tab = await send(open_tab, browser_session, phone)
    sent = await tab.receive_until("code_sent")
    snapshot = sent["verification"]
    if code is not None:
        assert snapshot["code"] == code
        assert snapshot["next_type"] == expected
    if phone.endswith("9005"):
        assert snapshot["code"]["type"] == "missed_call"
        assert snapshot["code"]["length"] == 4
        assert snapshot["code"]["prefix"]
    if phone.endswith("9006"):
        assert snapshot["code"]["type"] == "fragment_sms"
        assert snapshot["code"]["url"].startswith("https://fragment.com")
    if phone.endswith("9007"):
        assert snapshot["code"]["type"] == "sms_word"
        word = telegram_sandbox.last_code(phone)
        assert snapshot["code"]["beginning"] == word[0]
        code_to_type = word
    if phone.endswith("9008"):
        await tab.send(type="resend")
        error = await tab.receive_until("error")
        assert error["code"] == "SEND_CODE_UNAVAILABLE"
    await tab.send(type="verify", code=code_to_type)
    await tab.receive_until("verified")


async def test_sandbox_drop_is_survived(
    sandbox_sender, open_tab, browser_session, telegram_sandbox
):
    tab = await send(open_tab, browser_session, "+9996641234")
    await tab.receive_until("code_sent")
    telegram_sandbox.drop_connections()
    await tab.send(type="verify", code="44444")
    verified = await tab.receive_until("verified", wait=20)
    assert verified["verification"]["status"] == "verified"


async def test_injected_telegram_error_reaches_the_visitor(
    sandbox_sender, open_tab, browser_session, telegram_sandbox
):
    telegram_sandbox.inject_error("account.sendVerifyPhoneCode", "PHONE_NUMBER_FLOOD", code=400)
    tab = await send(open_tab, browser_session, "+9996651234")
    error = await tab.receive_until("error")
    assert error["code"] == "PHONE_NUMBER_FLOOD"


def test_telegram_login_command_with_a_password(monkeypatch):
    """`manage.py telegram_login`: phone → code → 2FA password, against the sandbox."""
    from io import StringIO

    from django.core.management import call_command

    from verification.models import SenderAccount

    answers = iter(["00000", "22222"])
    passwords = iter(["wrong", "sandbox-password"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(answers))
    monkeypatch.setattr("getpass.getpass", lambda prompt="": next(passwords))
    out, err = StringIO(), StringIO()
    call_command("telegram_login", phone="+999 66 2 8001", label="Main", stdout=out, stderr=err)
    assert "Connected sender account Main" in out.getvalue()
    assert "That code is not right" in err.getvalue()
    assert "That password is not right" in err.getvalue()
    account = SenderAccount.objects.get(phone_number="+9996628001")
    assert account.session and account.is_active


async def test_gateway_reconnects_when_the_server_comes_back(settings, tmp_path):
    """Telethon gives up after its own retries; the gateway's supervisor reconnects with
    backoff once the server is back, and the sender account works again."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state = tmp_path / "sandbox-state.json"
    first = SandboxThread(port=port, state_file=state).start()
    key = tmp_path / "sandbox.pem"
    key.write_text(first.public_key_pem)
    settings.VERIFICATION = {
        **settings.VERIFICATION,
        "TELEGRAM_SERVER": first.address,
        "TELEGRAM_SERVER_PUBLIC_KEY": str(key),
        "EMBEDDED_SANDBOX": False,
    }
    gateway = gateway_from_settings()
    second = None
    try:
        await gateway.login_send_code("login", "+9996619999")
        result = await gateway.login_sign_in("login", first.last_code("+9996619999"))
        await gateway.open(1, result.session)
        client = gateway._clients[1]
        await asyncio.to_thread(first.stop)
        async with asyncio.timeout(30):
            while not client.disconnected.done():
                await asyncio.sleep(0.1)
        with pytest.raises(GatewayError) as down:
            await gateway.send_verify_code(1, "+9996651111")
        assert down.value.code is ErrorCode.TELEGRAM_UNAVAILABLE
        second = SandboxThread(port=port, state_file=state).start()
        async with asyncio.timeout(30):
            while not client.is_connected():
                await asyncio.sleep(0.1)
        sent = await gateway.send_verify_code(1, "+9996651111")
        assert sent.type == "sms"
    finally:
        await gateway.close_all()
        if second is not None:
            await asyncio.to_thread(second.stop)
