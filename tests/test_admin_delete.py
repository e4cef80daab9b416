"""Deleting a sender account in the admin logs it out of Telegram first."""

from __future__ import annotations

import pytest
from asgiref.sync import sync_to_async
from django.test import AsyncClient
from django.urls import reverse

from verification.errors import ErrorCode
from verification.gateway import GatewayError
from verification.gateway.base import AccountUnusable
from verification.gateway.fake import FakeGateway
from verification.models import SenderAccount

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.asyncio]


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("staff", "staff@example.com", "pw")


async def signed_in_client(staff) -> AsyncClient:
    client = AsyncClient()
    await client.aforce_login(staff)
    return client


def delete_url(account: SenderAccount) -> str:
    return reverse("admin:verification_senderaccount_delete", args=[account.pk])


async def test_a_deleted_account_is_logged_out_of_telegram(
    fake_settings, staff, make_sender, stop_runtime
):
    account = await sync_to_async(make_sender)(session="session-to-end")
    client = await signed_in_client(staff)
    page = await client.get(delete_url(account))
    assert "logged out of Telegram before it is deleted" in page.content.decode()

    response = await client.post(delete_url(account), {"post": "yes"})
    assert response.status_code == 302
    assert response.url == reverse("admin:verification_senderaccount_changelist")
    assert FakeGateway.logged_out == {"session-to-end"}
    assert not await SenderAccount.objects.filter(pk=account.pk).aexists()


async def test_unreachable_telegram_is_reported_and_deleting_anyway_is_offered(
    fake_settings, staff, make_sender, stop_runtime
):
    account = await sync_to_async(make_sender)(session="session-to-end")
    FakeGateway.fail_next("log_out", GatewayError(ErrorCode.TELEGRAM_UNAVAILABLE))
    client = await signed_in_client(staff)

    response = await client.post(delete_url(account), {"post": "yes"})
    assert response.status_code == 302
    assert await SenderAccount.objects.filter(pk=account.pk).aexists()
    page = (await client.get(response.url)).content.decode()
    assert "could not be logged out of Telegram" in page
    assert "Telegram could not be reached" in page
    assert 'name="delete_anyway"' in page

    response = await client.post(delete_url(account), {"post": "yes", "delete_anyway": "1"})
    assert response.status_code == 302
    assert not await SenderAccount.objects.filter(pk=account.pk).aexists()
    assert FakeGateway.logged_out == set()


async def test_bulk_delete_is_not_offered(fake_settings, staff, make_sender, stop_runtime):
    await sync_to_async(make_sender)()
    client = await signed_in_client(staff)
    page = await client.get(reverse("admin:verification_senderaccount_changelist"))
    assert page.status_code == 200
    assert "delete_selected" not in page.content.decode()


@pytest.mark.integration
async def test_a_deleted_sandbox_account_cannot_sign_in_again(
    sandbox_settings, sandbox_sender, staff, settings, stop_runtime
):
    from verification.app_settings import get_config
    from verification.gateway import settings_derived_options
    from verification.gateway.telethon_gateway import TelethonGateway

    settings.VERIFICATION = {**settings.VERIFICATION, "REQUEST_TIMEOUT": 10}
    session = sandbox_sender.session
    client = await signed_in_client(staff)
    response = await client.post(delete_url(sandbox_sender), {"post": "yes"})
    assert response.status_code == 302
    assert not await SenderAccount.objects.filter(pk=sandbox_sender.pk).aexists()
    gateway = TelethonGateway(**settings_derived_options(get_config()))
    try:
        with pytest.raises(AccountUnusable):
            await gateway.open(1, session)
    finally:
        await gateway.close_all()
