"""axe-core on the app's own admin pages, signed in as staff: the verifications list (filters,
search, date drill-down, an action's confirmation), a verification's page, the summary, the
sender accounts (list, page, deletion), and connecting an account (each step, with errors).

The rows the pages show are written straight into the site's database, one of each kind the
admin tells apart: statuses, methods, transports, code types, errors, regions, reviews.
Each state is checked in one language, width and colour scheme per run of the module's
parameters, which together cover English and Russian, 1280 and 320 px, light and dark.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

pytestmark = pytest.mark.browser

STAFF = "axe-staff"
PASSWORD = "axe-staff-password"

# Runs in the site's own settings (manage.py shell): a staff user and one verification of each
# kind, with the events its page lists. Prints the ids the tests open.
SEED = """
import json
from datetime import timedelta
from django.contrib.auth import get_user_model
from django.utils import timezone
from verification.models import PhoneVerification as V, SenderAccount, VerificationEvent as E

users = get_user_model()
staff = users.objects.filter(username=STAFF).first() or users.objects.create_superuser(
    STAFF, "staff@example.com", PASSWORD
)
now = timezone.now()
account, _ = SenderAccount.objects.get_or_create(
    phone_number="+9996647001",
    defaults=dict(
        label="Reserve sender",
        display_name="Reserve",
        telegram_user_id=7001,
        is_active=False,
        last_error="FLOOD_WAIT: Telegram asked this account to wait 86400 seconds before sending",
        last_used_at=now - timedelta(hours=3),
    ),
)
KINDS = [
    dict(phone_number="+9996647010", status="verified", code_type="sms", next_type="call",
         code_length=5, attempts=1, review_status="approved", reviewed_by=staff,
         reviewed_at=now, review_note="Checked by phone."),
    dict(phone_number="+9996647011", status="failed", code_type="missed_call",
         code_prefix="+9996600", code_length=4, attempts=5, last_error="PHONE_CODE_INVALID"),
    dict(phone_number="+9996647012", status="expired", code_type="fragment_sms",
         code_url="https://fragment.com/number/9996647012/code", code_length=5,
         last_error="PHONE_CODE_EXPIRED"),
    dict(phone_number="+9996647013", status="cancelled", code_type="app", next_type="sms",
         code_length=5, review_status="rejected", reviewed_by=staff, reviewed_at=now),
    dict(phone_number="+9996647014", status="failed", last_error="FLOOD_WAIT",
         flood_until=now + timedelta(seconds=30)),
    dict(phone_number="+9996647015", status="verified", method="passport"),
    dict(phone_number="+447700900123", region="GB", status="verified", transport="gateway",
         delivery="read", code_type="sms", code_length=6),
    dict(phone_number="+9996647016", status="code_sent", code_type="sms_word",
         code_beginning="d", next_type="sms"),
    # A Passport share still waited for: no number yet.
    dict(phone_number="", status="waiting", method="passport"),
]
ids = {}
for index, kind in enumerate(KINDS):
    found = V.objects.filter(phone_number=kind["phone_number"]).first()
    if found is None:
        found = V.objects.create(
            owner=f"axe-admin-{index}", sender_account=account, ip_address="127.0.0.1",
            sent_at=now - timedelta(minutes=3), expires_at=now + timedelta(minutes=7),
            resend_at=now + timedelta(minutes=1),
            finished_at=None if kind["status"] in ("code_sent", "waiting") else now, **kind,
        )
        events = [
            ("started", "visitor", {"phone_number": kind["phone_number"]}),
            ("code_sent", "telegram", {"type": kind.get("code_type", ""), "length": 5,
                                        "next_type": kind.get("next_type", ""), "timeout": 60}),
            ("code_rejected", "visitor", {"attempts_left": 4}),
            ("error", "telegram", {"error": kind.get("last_error", "") or "FLOOD_WAIT",
                                    "retry_after": 30, "telegram_error": "FLOOD_WAIT_30"}),
            ("delivery", "telegram", {"status": "read"}),
            ("reviewed", "staff", {"review": "approved", "note": "Checked by phone."}),
        ]
        for kind_name, actor, data in events:
            E.objects.create(verification=found, kind=kind_name, actor=actor, data=data,
                             staff_user=staff if actor == "staff" else None)
    ids[kind["phone_number"]] = str(found.pk)
print(json.dumps({"verifications": ids, "account": account.pk}))
"""

# (language, width, colour scheme): each value of each appears at least twice.
VIEWS = [
    ("en", 1280, "light"),
    ("ru", 1280, "dark"),
    ("ru", 320, "light"),
    ("en", 320, "dark"),
]


@pytest.fixture(scope="module")
def seeded(live_site: Any) -> dict[str, Any]:
    script = SEED.replace("STAFF", repr(STAFF)).replace("PASSWORD", repr(PASSWORD))
    output = live_site.manage("shell", "-c", script)
    return json.loads(output.strip().splitlines()[-1])


@pytest.fixture(scope="module")
def staff_state(browser: Browser, live_site: Any, seeded: dict[str, Any]) -> dict[str, Any]:
    """The signed-in staff member's cookies."""
    context = browser.new_context(base_url=live_site.url)
    try:
        page = context.new_page()
        page.goto("/admin/login/?next=/admin/")
        page.fill("#id_username", STAFF)
        page.fill("#id_password", PASSWORD)
        page.click("input[type=submit]")
        expect(page.locator("#user-tools")).to_contain_text(STAFF)
        return context.storage_state()
    finally:
        context.close()


@pytest.fixture(params=VIEWS, ids=lambda view: f"{view[0]}-{view[1]}px-{view[2]}")
def view(request: pytest.FixtureRequest) -> tuple[str, int, str]:
    return request.param


@pytest.fixture
def admin_page(
    view: tuple[str, int, str],
    browser: Browser,
    live_site: Any,
    staff_state: dict[str, Any],
    js_errors: list[str],
) -> Iterator[Page]:
    language, width, scheme = view
    context: BrowserContext = browser.new_context(
        base_url=live_site.url,
        storage_state=staff_state,  # type: ignore[arg-type]
        locale=language,
        viewport={"width": width, "height": 800},
        color_scheme=scheme,
    )
    page = context.new_page()
    page.on("pageerror", lambda error: js_errors.append(f"pageerror: {error}"))
    yield page
    context.close()


def open_admin(page: Page, path: str) -> Page:
    response = page.goto(path)
    assert response is not None and response.status == 200, path
    expect(page.locator("#content")).to_be_visible()
    return page


def test_verifications_list_and_summary(
    admin_page: Page, seeded: dict[str, Any], axe: Any, js_errors: list[str]
) -> None:
    page = admin_page
    changelist = "/admin/verification/phoneverification/"
    open_admin(page, "/admin/verification/")
    axe(page, "the app's index")
    open_admin(page, changelist)
    expect(page.locator("#result_list")).to_be_visible()
    axe(page, "verifications list")
    # Filters, including the region filter's empty value, search and the date drill-down.
    open_admin(page, changelist + "?status__exact=failed&code_type=missed_call")
    axe(page, "verifications list, two filters")
    open_admin(page, changelist + "?region=")
    axe(page, "verifications list, no region")
    open_admin(page, changelist + "?region=GB&transport__exact=gateway")
    axe(page, "verifications list, region and transport")
    open_admin(page, changelist + "?q=%2B999+66+4+7010")
    expect(page.locator("#result_list tbody tr")).to_have_count(1)
    axe(page, "verifications list, searched by number")
    open_admin(page, changelist + "?q=nobody-at-all")
    axe(page, "verifications list, nothing found")
    open_admin(page, changelist)
    page.locator("nav.toplinks a").first.click()  # the date hierarchy, one step down
    expect(page.locator("nav.toplinks a.date-back")).to_be_visible()
    axe(page, "verifications list, by date")

    # An action's confirmation, with the warning about verifications that did not verify.
    open_admin(page, changelist + "?status__exact=failed")
    page.locator("#action-toggle").check()
    page.select_option("select[name=action]", "approve")
    page.locator("button[name=index]").click()
    expect(page.locator("#review-warning")).to_be_visible()
    axe(page, "approve confirmation")
    page.fill("#review-note", "Checked by phone.")
    page.locator("input[type=submit].default").click()
    expect(page.locator("ul.messagelist")).to_be_visible()
    axe(page, "verifications list after approving")

    for days in ("1", "7", "30"):
        open_admin(page, f"/admin/verification/phoneverification/summary/?days={days}")
        expect(page.locator("#summary-totals")).to_be_visible()
        axe(page, f"summary over {days} days")
    axe.assert_clean()
    assert js_errors == []


def test_verification_pages(
    admin_page: Page, seeded: dict[str, Any], axe: Any, js_errors: list[str]
) -> None:
    page = admin_page
    # One page of each shape: reviewed, failed with errors, in progress, Passport, Gateway.
    for phone in ("+9996647010", "+9996647011", "+9996647016", "+9996647015", "+447700900123"):
        pk = seeded["verifications"][phone]
        open_admin(page, f"/admin/verification/phoneverification/{pk}/change/")
        expect(page.locator("#id_review_status")).to_be_visible()
        # The timeline: its six seeded events (reviews add more), none offered for removal.
        expect(page.locator("#events-group tbody tr").nth(5)).to_be_visible()
        expect(page.locator("#events-group .inline-deletelink")).to_have_count(0)
        axe(page, f"verification {phone}")
    # Saving a review: the page again, with its confirmation.
    pk = seeded["verifications"]["+9996647011"]
    open_admin(page, f"/admin/verification/phoneverification/{pk}/change/")
    page.select_option("#id_review_status", "approved")
    page.fill("#id_review_note", "Approved after a call.")
    page.locator("input[name=_continue]").click()
    expect(page.locator("ul.messagelist")).to_be_visible()
    axe(page, "verification saved, with the unverified warning")
    open_admin(page, f"/admin/verification/phoneverification/{pk}/history/")
    axe(page, "verification history")
    axe.assert_clean()
    assert js_errors == []


def test_sender_account_pages(
    admin_page: Page, seeded: dict[str, Any], axe: Any, js_errors: list[str]
) -> None:
    page = admin_page
    accounts = "/admin/verification/senderaccount/"
    open_admin(page, accounts)
    expect(page.locator("#result_list")).to_be_visible()
    axe(page, "sender accounts")
    open_admin(page, accounts + "?is_active__exact=0")
    axe(page, "sender accounts, inactive")
    account = seeded["account"]
    open_admin(page, f"{accounts}{account}/change/")
    axe(page, "sender account")
    open_admin(page, f"{accounts}{account}/delete/")
    axe(page, "deleting a sender account")
    open_admin(page, f"{accounts}{account}/delete/?log_out_failed=1")
    axe(page, "deleting a sender account Telegram could not log out")
    axe.assert_clean()
    assert js_errors == []


def test_connecting_an_account(
    admin_page: Page, view: tuple[str, int, str], axe: Any, js_errors: list[str]
) -> None:
    page = admin_page
    connect = "/admin/verification/senderaccount/connect/"
    open_admin(page, connect)
    axe(page, "connect: the number")
    page.fill("#id_phone_number", "12")
    page.locator("input[name=next]").click()
    expect(page.locator(".errorlist")).to_be_visible()
    axe(page, "connect: a number that is not one")

    # A number with two-step verification (+99966X8YYY), one per parameter set; never finished,
    # so no sender account is added.
    digit = str(VIEWS.index(view) + 2)
    page.fill("#id_phone_number", f"+99966{digit}8{digit}{digit}{digit}")
    page.locator("input[name=next]").click()
    expect(page.locator("#id_code")).to_be_visible()
    axe(page, "connect: the code")
    page.fill("#id_code", "00000")
    page.locator("input[name=next]").click()
    expect(page.locator(".errornote, .errorlist")).to_be_visible()
    axe(page, "connect: a wrong code")
    page.fill("#id_code", digit * 5)
    page.locator("input[name=next]").click()
    expect(page.locator("#id_password")).to_be_visible()
    axe(page, "connect: the password")
    page.fill("#id_password", "not-the-password")
    page.locator("input[name=next]").click()
    expect(page.locator(".errornote, .errorlist")).to_be_visible()
    axe(page, "connect: a wrong password")
    page.locator("input[name=restart]").click()
    expect(page.locator("#id_phone_number")).to_be_visible()
    expect(page).to_have_url(re.compile(re.escape(connect) + "$"))
    axe.assert_clean()
    assert js_errors == []


@pytest.mark.parametrize("language", ["en", "ru"])
@pytest.mark.parametrize(
    "path", ["/admin/verification/phoneverification/", "/admin/verification/senderaccount/"]
)
def test_the_lists_fit_1280_px_beside_the_navigation(
    browser: Browser,
    live_site: Any,
    staff_state: dict[str, Any],
    language: str,
    path: str,
) -> None:
    """Every column of the list, the last one included, is on screen at 1280 px with the admin's
    navigation open, without scrolling sideways."""
    context = browser.new_context(
        base_url=live_site.url,
        storage_state=staff_state,  # type: ignore[arg-type]
        locale=language,
        viewport={"width": 1280, "height": 800},
    )
    try:
        page = open_admin(context.new_page(), path)
        expect(page.locator("#nav-sidebar")).to_be_visible()
        headers = page.locator("#result_list thead th")
        assert headers.count() > 3
        last = headers.last.bounding_box()
        assert last is not None
        widths = page.evaluate(
            "() => [document.documentElement.scrollWidth,"
            " document.querySelector('#changelist .results').scrollWidth,"
            " document.querySelector('#changelist .results').clientWidth]"
        )
        columns = page.evaluate(
            "() => [...document.querySelectorAll('#result_list thead th')]"
            ".map(th => [th.innerText.trim(), Math.round(th.getBoundingClientRect().width)])"
        )
        assert last["x"] + last["width"] <= 1280, (columns, widths)
        assert widths[0] <= 1280 and widths[1] <= widths[2], widths
    finally:
        context.close()
