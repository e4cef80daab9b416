"""The Gateway API sandbox embedded in the web process (``EMBEDDED_GATEWAY_SANDBOX``): a
developer tries the Gateway transport with no token configured, and reads its codes in the
sandbox inbox beside the MTProto ones."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from django.test import AsyncClient

from verification import gateway_requests, runtime
from verification.app_settings import DEFAULTS

pytestmark = [pytest.mark.asyncio, pytest.mark.django_db(transaction=True)]

CALLBACK = "http://testserver/gateway/report/"


@pytest.fixture
def embedded_gateway(fake_settings: Any) -> Any:
    fake_settings.DEBUG = True
    fake_settings.VERIFICATION = {
        **fake_settings.VERIFICATION,
        "EMBEDDED_GATEWAY_SANDBOX": True,
        "TRANSPORTS": ["gateway", "sender"],
        "TELEGRAM_GATEWAY_CALLBACK_URL": CALLBACK,
    }
    return fake_settings


def report_to_the_endpoint(sandbox: Any) -> None:
    """Hand the embedded sandbox's delivery reports to the report endpoint on this loop."""
    loop = asyncio.get_running_loop()
    client = AsyncClient()

    async def post(url: str, body: bytes, headers: dict[str, str]) -> None:
        path = url.removeprefix("http://testserver")
        await client.post(path, body, content_type="application/json", headers=headers)

    def deliver(url: str, body: bytes, headers: dict[str, str]) -> int:
        asyncio.run_coroutine_threadsafe(post(url, body, headers), loop)
        return 200

    sandbox.deliver = deliver


async def test_a_visitor_verifies_through_the_embedded_gateway_sandbox(
    embedded_gateway: Any, open_tab: Any, browser_session: Any
) -> None:
    tab, _ = await open_tab(await browser_session())
    embedded = runtime.current()
    assert embedded is not None and embedded.gateway_sandbox is not None
    sandbox = embedded.gateway_sandbox
    # No token in the settings: the runtime handed the sandbox's address and token down.
    assert gateway_requests.gateway_address() == (sandbox.url, sandbox.token)
    report_to_the_endpoint(sandbox)

    await tab.send(type="send_code", phone_number="+9996641234")
    sending = await tab.receive()
    assert sending["verification"]["transport"] == "gateway"
    await tab.receive_until("code_sent")
    assert (await tab.receive_until("delivery"))["status"] == "sent"

    # The inbox shows the Gateway message; showing it is the visitor reading it.
    inbox = await AsyncClient().get("/sandbox/codes.json", {"after": 0})
    assert inbox.status_code == 200
    codes = inbox.json()["codes"]
    assert [(c["phone"], c["code"], c["purpose"]) for c in codes] == [
        ("+9996641234", "444444", "gateway")
    ]
    while (await tab.receive_until("delivery"))["status"] != "read":
        pass

    await tab.send(type="verify", code="444444")
    verified = await tab.receive_until("verified")
    assert verified["verification"]["status"] == "verified"


async def test_the_sandbox_stops_with_the_runtime_and_the_settings_apply_again(
    embedded_gateway: Any, open_tab: Any, browser_session: Any
) -> None:
    await open_tab(await browser_session())
    sandbox = runtime.current().gateway_sandbox
    await runtime.shutdown()
    assert gateway_requests.gateway_address() == (DEFAULTS["TELEGRAM_GATEWAY_URL"], "")
    with pytest.raises(AssertionError, match="not started"):
        _ = sandbox.port


async def test_without_the_setting_no_gateway_sandbox_runs(
    fake_settings: Any, open_tab: Any, browser_session: Any
) -> None:
    fake_settings.DEBUG = True
    await open_tab(await browser_session())
    assert runtime.current().gateway_sandbox is None
    assert gateway_requests.gateway_address()[1] == ""
