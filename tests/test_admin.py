from __future__ import annotations

import pytest
from django.test import AsyncClient
from django.urls import reverse

from verification.gateway.fake import FakeGateway
from verification.models import PhoneVerification, SenderAccount

pytestmark = pytest.mark.django_db(transaction=True)


async def started_verification(make_sender, **sender):
    """A leased sender account and one verification in progress from it."""
    from asgiref.sync import sync_to_async

    from verification import services

    await sync_to_async(make_sender)(**sender)
    await sync_to_async(services.sender_account_leases_renew)(owner="w")
    verification, _ = await sync_to_async(services.verification_start)(
        owner="o", user=None, phone_number="+9996621234"
    )
    return verification


@pytest.fixture
def staff(django_user_model):
    return django_user_model.objects.create_superuser("staff", "staff@example.com", "pw")


@pytest.mark.asyncio
async def test_connect_a_sender_account_with_a_password(fake_settings, staff, stop_runtime):
    client = AsyncClient()
    await client.aforce_login(staff)
    url = reverse("admin:verification_senderaccount_connect")
    page = await client.get(url)
    assert page.status_code == 200
    assert "Phone number of the Telegram account" in page.content.decode()

    response = await client.post(url, {"phone_number": "+9996618001"})
    assert response.status_code == 302
    code_page = await client.get(url)
    assert "sent a sign-in code to +9996618001" in code_page.content.decode()

    wrong = await client.post(url, {"code": "00000"})
    assert wrong.status_code == 200
    assert "That code is not right" in wrong.content.decode()

    response = await client.post(url, {"code": FakeGateway.last_code("+9996618001")})
    assert response.status_code == 302
    password_page = await client.get(url)
    assert "two-step verification" in password_page.content.decode()

    bad = await client.post(url, {"password": "guess"})
    assert "That password is not right" in bad.content.decode()
    response = await client.post(url, {"password": "sandbox-password"})
    assert response.status_code == 302
    assert response.url == reverse("admin:verification_senderaccount_changelist")
    account = await SenderAccount.objects.aget(phone_number="+9996618001")
    assert account.is_active
    assert account.session


@pytest.mark.asyncio
async def test_admin_pages_never_show_secrets(fake_settings, staff, make_sender, stop_runtime):
    from asgiref.sync import sync_to_async

    from verification import services
    from verification.gateway import SentCode

    account = await sync_to_async(make_sender)(session="secret-session-string")
    await sync_to_async(services.sender_account_leases_renew)(owner="w")
    verification, _ = await sync_to_async(services.verification_start)(
        owner="o", user=None, phone_number="+9996621234"
    )
    await sync_to_async(services.verification_code_sent)(
        verification_id=verification.pk,
        sent=SentCode(type="sms", phone_code_hash="secret-hash-value", length=5),
    )
    client = AsyncClient()
    await client.aforce_login(staff)
    pages = [
        reverse("admin:verification_senderaccount_changelist"),
        reverse("admin:verification_senderaccount_change", args=[account.pk]),
        reverse("admin:verification_phoneverification_changelist"),
        reverse("admin:verification_phoneverification_change", args=[verification.pk]),
    ]
    for url in pages:
        response = await client.get(url)
        assert response.status_code == 200, url
        body = response.content.decode()
        assert "secret-session-string" not in body
        assert "secret-hash-value" not in body
    assert "+9996621234" in body


@pytest.mark.asyncio
async def test_review_and_cancel_actions(fake_settings, staff, make_sender, stop_runtime):

    verification = await started_verification(make_sender)
    client = AsyncClient()
    await client.aforce_login(staff)
    url = reverse("admin:verification_phoneverification_changelist")
    for action in ("approve", "cancel"):
        response = await client.post(
            url, {"action": action, "_selected_action": [str(verification.pk)]}
        )
        assert response.status_code == 302
    row = await PhoneVerification.objects.aget(pk=verification.pk)
    assert row.review_status == "approved"
    assert row.status == "cancelled"
    kinds = [e.kind async for e in row.events.all()]
    assert kinds[-2:] == ["reviewed", "cancelled"]
    export = await client.post(
        url, {"action": "export_csv", "_selected_action": [str(verification.pk)]}
    )
    assert export["Content-Type"] == "text/csv"
    assert "+9996621234" in export.content.decode()


@pytest.mark.asyncio
async def test_summary_shows_conversion(fake_settings, staff, make_sender, stop_runtime):
    from asgiref.sync import sync_to_async

    from verification import services
    from verification.errors import ErrorCode
    from verification.gateway import SentCode

    await sync_to_async(make_sender)()
    await sync_to_async(services.sender_account_leases_renew)(owner="w")
    for owner, verified in (("a", True), ("b", False), ("c", True), ("d", False)):
        verification, _ = await sync_to_async(services.verification_start)(
            owner=owner, user=None, phone_number="+9996621234"
        )
        await sync_to_async(services.verification_code_sent)(
            verification_id=verification.pk,
            sent=SentCode(type="sms", phone_code_hash="h", length=5),
        )
        await sync_to_async(services.verification_attempt_start)(verification_id=verification.pk)
        await sync_to_async(services.verification_attempt_result)(
            verification_id=verification.pk,
            error=None if verified else ErrorCode.PHONE_CODE_EXPIRED,
        )
    client = AsyncClient()
    await client.aforce_login(staff)
    response = await client.get(reverse("admin:verification_phoneverification_summary"))
    assert response.status_code == 200
    body = response.content.decode()
    assert '<th scope="row">Started</th><td>4</td>' in body
    assert '<th scope="row">Conversion</th><td>50 %</td>' in body
    assert "<code>PHONE_CODE_EXPIRED</code></td><td>2</td>" in body
    changelist = await client.get(reverse("admin:verification_phoneverification_changelist"))
    assert reverse("admin:verification_phoneverification_summary") in changelist.content.decode()


async def row_events(verification):
    return await verification.events.acount()


@pytest.mark.asyncio
async def test_review_note_can_be_cleared(fake_settings, staff, make_sender, stop_runtime):
    from asgiref.sync import sync_to_async

    from verification import services

    verification = await started_verification(make_sender)
    client = AsyncClient()
    await client.aforce_login(staff)
    url = reverse("admin:verification_phoneverification_change", args=[verification.pk])
    for status, note in (("rejected", "looks odd"), ("approved", "")):
        events = await row_events(verification)
        response = await client.post(
            url,
            {
                "review_status": status,
                "review_note": note,
                "events-TOTAL_FORMS": str(events),
                "events-INITIAL_FORMS": str(events),
                "events-MIN_NUM_FORMS": "0",
                "events-MAX_NUM_FORMS": "1000",
            },
        )
        assert response.status_code == 302
        row = await PhoneVerification.objects.aget(pk=verification.pk)
        assert (row.review_status, row.review_note) == (status, note)
    # An action keeps the note it is not given.
    await sync_to_async(services.verification_review)(
        verification=row, status="rejected", staff_user=staff, note="kept"
    )
    await client.post(
        reverse("admin:verification_phoneverification_changelist"),
        {"action": "approve", "_selected_action": [str(verification.pk)]},
    )
    row = await PhoneVerification.objects.aget(pk=verification.pk)
    assert (row.review_status, row.review_note) == ("approved", "kept")
