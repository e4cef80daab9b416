"""The test kit host projects get with ``pytest_plugins = ["verification.testing"]``."""

from __future__ import annotations

import pytest

from verification.models import PhoneVerification

pytestmark = pytest.mark.django_db(transaction=True)


async def test_a_host_project_verifies_a_number_end_to_end(
    sandbox_settings,
    sandbox_sender,
    verification_tab,
):
    tab = await verification_tab()
    assert tab.first_frame == {"type": "state", "verification": None}
    await tab.send(type="send_code", phone_number="+999 66 3 4567")
    sent = await tab.receive_until("code_sent")
    assert sent["verification"]["code"]["type"] == "sms"
    code = sandbox_settings.last_code("+9996634567")
    assert code == "33333"
    second = await verification_tab(tab.session_key)
    assert second.first_frame["verification"]["status"] == "code_sent"
    await tab.send(type="verify", code=code)
    assert (await second.receive_until("verified"))["verification"]["status"] == "verified"
    row = await PhoneVerification.objects.select_related("sender_account").aget()
    assert row.sender_account.phone_number == sandbox_sender.phone_number


async def test_injected_faults_reach_the_visitor(
    sandbox_settings,
    sandbox_sender,
    verification_tab,
):
    sandbox_settings.inject_error("account.sendVerifyPhoneCode", "FLOOD_WAIT_7", code=420)
    tab = await verification_tab()
    await tab.send(type="send_code", phone_number="+9996634568")
    error = await tab.receive_until("error")
    assert error["code"] == "FLOOD_WAIT"
    assert error["retry_after"] == 7
