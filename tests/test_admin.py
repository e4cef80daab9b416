from __future__ import annotations

import html
import re

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
            url, {"action": action, "_selected_action": [str(verification.pk)], "apply": "1"}
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
    assert re.search(r'<th scope="row">Started</th><td><a href="[^"]+">4</a></td>', body)
    assert '<th scope="row">Conversion</th><td>50 %</td>' in body
    expired = re.search(
        r'<span title="PHONE_CODE_EXPIRED">Code expired</span></td><td><a href="([^"]+)">2</a>',
        body,
    )
    assert expired
    # The selected period is said, not only linked; every count opens the matching list.
    assert '<strong aria-current="page">last 7 days</strong>' in body
    assert "Verifications started in the last 7 days" in body
    listed = await client.get(html.unescape(expired.group(1)))
    assert listed.status_code == 200
    assert listed.context["cl"].result_count == 2
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
        {"action": "approve", "_selected_action": [str(verification.pk)], "apply": "1"},
    )
    row = await PhoneVerification.objects.aget(pk=verification.pk)
    assert (row.review_status, row.review_note) == ("approved", "kept")


async def verifications_with_codes(make_sender, numbers):
    """One verification per number, each sent an SMS code; the first one then expires."""
    from asgiref.sync import sync_to_async

    from verification import services
    from verification.errors import ErrorCode
    from verification.gateway import SentCode

    await sync_to_async(make_sender)()
    await sync_to_async(services.sender_account_leases_renew)(owner="w")
    rows = []
    for n, number in enumerate(numbers):
        verification, _ = await sync_to_async(services.verification_start)(
            owner=f"owner-{n}", user=None, phone_number=number
        )
        await sync_to_async(services.verification_code_sent)(
            verification_id=verification.pk,
            sent=SentCode(type="missed_call", phone_code_hash="h", length=4, next_type="sms"),
        )
        rows.append(verification)
    await sync_to_async(services.verification_attempt_start)(verification_id=rows[0].pk)
    await sync_to_async(services.verification_attempt_result)(
        verification_id=rows[0].pk, error=ErrorCode.PHONE_CODE_EXPIRED
    )
    return rows


@pytest.mark.asyncio
async def test_the_list_speaks_human_and_finds_a_number_as_shown(
    fake_settings, staff, make_sender, stop_runtime
):
    numbers = ["+9996629005", "+9996629006", "+9996639005", "+9996621234"]
    await verifications_with_codes(make_sender, numbers)
    client = AsyncClient()
    await client.aforce_login(staff)
    url = reverse("admin:verification_phoneverification_changelist")

    page = await client.get(url)
    body = page.content.decode()
    assert '<td class="field-sent_as">Missed call · Sender account</td>' in body
    assert '<td class="field-last_error_label">Code expired</td>' in body
    assert ">missed_call<" not in body
    assert ">PHONE_CODE_EXPIRED<" not in body
    # Filters name every value, the empty region included (no link without text).
    assert re.search(r'<a href="\?region=">\s*No region \(test numbers\)\s*</a>', body)
    assert re.search(r'<a href="\?code_type=missed_call">\s*Missed call\s*</a>', body)
    filters = body[body.index('id="changelist-filter"') :]
    assert not re.search(r"<a [^>]*>\s*</a>", filters[: filters.index("</nav>")])

    found = await client.get(url, {"q": "+999 66 2 9005"})
    assert [row.phone_number for row in found.context["cl"].result_list] == ["+9996629005"]
    found = await client.get(url, {"q": "+999 66 2"})
    assert found.context["cl"].result_count == 3


@pytest.mark.asyncio
async def test_the_timeline_is_to_the_second_and_readable(
    fake_settings, staff, make_sender, stop_runtime
):
    from django.utils import timezone

    [verification] = await verifications_with_codes(make_sender, ["+9996629005"])
    client = AsyncClient()
    await client.aforce_login(staff)
    page = await client.get(
        reverse("admin:verification_phoneverification_change", args=[verification.pk])
    )
    body = page.content.decode()
    sent = await verification.events.filter(kind="code_sent").afirst()
    assert timezone.localtime(sent.created_at).strftime("%H:%M:%S") in body
    assert "<strong>code type</strong>: Missed call" in body
    assert "<strong>next type</strong>: SMS" in body
    assert "<strong>code length</strong>: 4" in body
    assert '"code_type"' not in body


@pytest.mark.asyncio
async def test_verifications_cannot_be_deleted(fake_settings, staff, make_sender, stop_runtime):
    verification = await started_verification(make_sender)
    client = AsyncClient()
    await client.aforce_login(staff)
    page = await client.get(reverse("admin:verification_phoneverification_changelist"))
    assert "delete_selected" not in page.content.decode()
    change = await client.get(
        reverse("admin:verification_phoneverification_change", args=[verification.pk])
    )
    assert "deletelink" not in change.content.decode()
    delete = await client.post(
        reverse("admin:verification_phoneverification_delete", args=[verification.pk]),
        {"post": "yes"},
    )
    assert delete.status_code == 403
    assert await PhoneVerification.objects.filter(pk=verification.pk).aexists()


@pytest.mark.asyncio
async def test_bulk_review_asks_for_a_note_and_warns_about_unverified(
    fake_settings, staff, make_sender, stop_runtime
):
    rows = await verifications_with_codes(make_sender, ["+9996629005", "+9996629006"])
    client = AsyncClient()
    await client.aforce_login(staff)
    url = reverse("admin:verification_phoneverification_changelist")
    selected = [str(row.pk) for row in rows]

    confirm = await client.post(url, {"action": "approve", "_selected_action": selected})
    assert confirm.status_code == 200
    body = confirm.content.decode()
    assert "2 of the selected verifications did not verify their numbers." in body
    assert 'name="review_note"' in body
    assert not await PhoneVerification.objects.filter(review_status="approved").aexists()

    done = await client.post(
        url,
        {
            "action": "approve",
            "_selected_action": selected,
            "apply": "1",
            "review_note": "Checked by phone call",
        },
        follow=True,
    )
    messages = [str(message) for message in done.context["messages"]]
    assert "2 verifications reviewed." in messages
    assert "2 approved verifications did not verify their numbers." in messages
    notes = [
        (row.review_status, row.review_note)
        async for row in PhoneVerification.objects.filter(pk__in=selected)
    ]
    assert notes == [("approved", "Checked by phone call")] * 2


@pytest.mark.asyncio
async def test_method_is_a_column_a_filter_and_splits_the_summary(
    fake_settings, staff, make_sender, stop_runtime
):
    from asgiref.sync import sync_to_async

    from verification import passport_services, services
    from verification.gateway import SentCode

    await sync_to_async(make_sender)()
    await sync_to_async(services.sender_account_leases_renew)(owner="w")
    # Codes: one of two verified. Passport: two of three verified, one still waiting.
    for owner, verified in (("a", True), ("b", False)):
        verification, _ = await sync_to_async(services.verification_start)(
            owner=owner, user=None, phone_number="+9996621234"
        )
        await sync_to_async(services.verification_code_sent)(
            verification_id=verification.pk,
            sent=SentCode(type="sms", phone_code_hash="h", length=5),
        )
        if verified:
            await sync_to_async(services.verification_attempt_start)(
                verification_id=verification.pk
            )
            await sync_to_async(services.verification_attempt_result)(
                verification_id=verification.pk, error=None
            )
    for owner, verified in (("p", True), ("q", True), ("r", False)):
        nonce = owner * 32
        verification, _ = await sync_to_async(passport_services.verification_passport_start)(
            owner=owner, user=None, nonce=nonce
        )
        if verified:
            await sync_to_async(passport_services.verification_passport_received)(
                nonce=nonce, telegram_user_id=1
            )
            await sync_to_async(passport_services.verification_passport_result)(
                verification_id=verification.pk, phone_number="+9996631234", reason=""
            )

    client = AsyncClient()
    await client.aforce_login(staff)
    summary = (
        await client.get(reverse("admin:verification_phoneverification_summary"))
    ).content.decode()
    table = re.search(r'<table id="summary-methods">.*?</table>', summary, re.S)
    assert table
    rows = re.findall(
        r'<tr><th scope="row">([^<]+)</th><td>(?:<a [^>]+>)?(\d+)(?:</a>)?</td>'
        r"<td>(?:<a [^>]+>)?(\d+)(?:</a>)?</td><td>([^<]+)</td></tr>",
        table.group(0),
    )
    assert rows == [("Code", "2", "1", "50 %"), ("Telegram Passport", "3", "2", "67 %")]
    passport_link = re.search(
        r'<th scope="row">Telegram Passport</th><td><a href="([^"]+)"', table.group(0)
    )
    assert passport_link
    listed = await client.get(html.unescape(passport_link.group(1)))
    assert listed.context["cl"].result_count == 3

    url = reverse("admin:verification_phoneverification_changelist")
    changelist = await client.get(url)
    body = changelist.content.decode()
    assert body.count('<td class="field-sent_as">Telegram Passport</td>') == 3
    assert "?method__exact=passport" in body  # the filter offers each method
    filtered = await client.get(url, {"method__exact": "code"})
    assert filtered.context["cl"].result_count == 2


@pytest.mark.asyncio
async def test_transport_is_a_column_a_filter_and_splits_the_summary(
    fake_settings, staff, make_sender, stop_runtime
):
    from asgiref.sync import sync_to_async

    from verification import services
    from verification.gateway import SentCode

    await sync_to_async(make_sender)()
    await sync_to_async(services.sender_account_leases_renew)(owner="w")
    sent = SentCode(type="sms", phone_code_hash="h", length=5)
    sender, _ = await sync_to_async(services.verification_start)(
        owner="s", user=None, phone_number="+9996621234"
    )
    await sync_to_async(services.verification_code_sent)(verification_id=sender.pk, sent=sent)

    fake_settings.VERIFICATION = {
        **fake_settings.VERIFICATION,
        "TRANSPORTS": ["gateway", "sender"],
        "TELEGRAM_GATEWAY_TOKEN": "token",
    }
    app = SentCode(type="app", phone_code_hash="", length=6)
    gateway, _ = await sync_to_async(services.verification_start)(
        owner="g", user=None, phone_number="+9996631234"
    )
    assert gateway.transport == "gateway"
    await sync_to_async(services.verification_code_sent)(
        verification_id=gateway.pk, sent=app, gateway_request_id="first", cost={}
    )
    await sync_to_async(services.verification_code_sent)(
        verification_id=gateway.pk, sent=app, resent=True, gateway_request_id="second", cost={}
    )
    await sync_to_async(services.verification_delivery_report)(
        request_id="second", status="delivered"
    )

    client = AsyncClient()
    await client.aforce_login(staff)
    summary = (
        await client.get(reverse("admin:verification_phoneverification_summary"))
    ).content.decode()
    table = re.search(r'<table id="summary-transports">.*?</table>', summary, re.S)
    assert table
    rows = re.findall(
        r'<tr><th scope="row">([^<]+)</th><td>(?:<a [^>]+>)?(\d+)(?:</a>)?</td>',
        table.group(0),
    )
    assert rows == [("Sender account", "1"), ("Gateway API", "1")]
    assert '<td id="summary-gateway-messages" colspan="3">2</td>' in table.group(0)
    gateway_link = re.search(
        r'<th scope="row">Gateway API</th><td><a href="([^"]+)"', table.group(0)
    )
    listed = await client.get(html.unescape(gateway_link.group(1)))
    assert [v.pk for v in listed.context["cl"].result_list] == [gateway.pk]

    url = reverse("admin:verification_phoneverification_changelist")
    body = (await client.get(url)).content.decode()
    assert body.count('<td class="field-sent_as">Telegram app · Gateway API</td>') == 1
    assert "?transport__exact=gateway" in body
    filtered = await client.get(url, {"transport__exact": "sender"})
    assert [v.pk for v in filtered.context["cl"].result_list] == [sender.pk]

    page = await client.get(
        reverse("admin:verification_phoneverification_change", args=[gateway.pk])
    )
    detail = page.content.decode()
    assert re.search(r'<div class="readonly">Gateway API</div>', detail)
    assert re.search(r'<label>Delivery:</label>\s*<div class="readonly">Delivered</div>', detail)


@pytest.mark.django_db
def test_summary_shows_gateway_spend_per_day_and_warns_of_a_low_balance(
    fake_settings, staff, client
):
    from datetime import timedelta

    from django.utils import timezone

    from verification import services
    from verification.gateway import SentCode
    from verification.models import VerificationEvent

    fake_settings.VERIFICATION = {
        **fake_settings.VERIFICATION,
        "TRANSPORTS": ["gateway"],
        "TELEGRAM_GATEWAY_TOKEN": "token",
        "TELEGRAM_GATEWAY_LOW_BALANCE": 5,
    }
    app = SentCode(type="app", phone_code_hash="", length=6)
    first, _ = services.verification_start(owner="a", user=None, phone_number="+9996631234")
    services.verification_code_sent(
        verification_id=first.pk,
        sent=app,
        gateway_request_id="a1",
        cost={"request_cost": 0.5, "remaining_balance": 9.5},
    )
    services.verification_code_sent(
        verification_id=first.pk,
        sent=app,
        resent=True,
        gateway_request_id="a2",
        cost={"request_cost": 0.25, "remaining_balance": 9.25},
    )
    # The first message went out two days ago.
    two_days_ago = timezone.now() - timedelta(days=2)
    VerificationEvent.objects.filter(data__request_id="a1").update(created_at=two_days_ago)

    client.force_login(staff)
    summary_url = reverse("admin:verification_phoneverification_summary")
    changelist_url = reverse("admin:verification_phoneverification_changelist")
    body = client.get(summary_url).content.decode()
    table = re.search(r'<table id="summary-gateway-spend">.*?</table>', body, re.S)
    assert table
    rows = re.findall(
        r'<tr><th scope="row">([^<]+)</th><td>(\d+)</td><td[^>]*>([\d.]+)</td></tr>',
        table.group(0),
    )
    day = timezone.localdate
    assert rows == [
        (f"{day(two_days_ago):%m/%d/%Y}", "1", "0.50"),
        (f"{day():%m/%d/%Y}", "1", "0.25"),
        ("Total", "2", "0.75"),
    ]
    assert "balance was" not in body  # 9.25 is above the threshold of 5
    assert "balance was" not in client.get(changelist_url).content.decode()

    second, _ = services.verification_start(owner="b", user=None, phone_number="+9996632345")
    services.verification_code_sent(
        verification_id=second.pk,
        sent=app,
        gateway_request_id="b1",
        cost={"request_cost": 4.5, "remaining_balance": 4.75},
    )
    # A delivery report without a balance does not hide the last one known.
    services.verification_delivery_report(request_id="b1", status="delivered")
    for url in (summary_url, changelist_url):
        page = html.unescape(client.get(url).content.decode())
        assert re.search(
            r'<li class="warning">The Telegram Gateway account\'s balance was 4\.75 on [^<]+, '
            r"below 5\.00: top it up",
            page,
        ), url
    # The day's spend now counts both messages.
    body = client.get(summary_url, {"days": "1"}).content.decode()
    assert 'id="summary-gateway-spend-total">4.75</td>' in body

    fake_settings.VERIFICATION = {**fake_settings.VERIFICATION, "TELEGRAM_GATEWAY_LOW_BALANCE": 0}
    assert "balance was" not in client.get(changelist_url).content.decode()
