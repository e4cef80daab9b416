"""The Telegram Passport way on the visitor page, against the real site and its embedded sandbox.

The embedded sandbox registers its own Passport bot, so the option is on. The sandbox inbox
(DEBUG) plays the visitor's Telegram app: its Share button answers an open request as tapping
Authorize does, and the page turns verified over its socket.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, WebSocketRoute, expect

from tests.browser.visitor import wait_for_step

pytestmark = pytest.mark.browser

SHARED_PHONE = "+999 66 3 1234"


def start_passport(page: Page) -> str:
    """Clicks the Passport action; returns the id of the request the page shows."""
    wait_for_step(page, "number")
    page.click("#passport-start")
    wait_for_step(page, "passport")
    expect(page.locator("#passport-open")).to_have_attribute(
        "href", re.compile(r"^tg://resolve\?domain=telegrampassport&bot_id=\d+&")
    )
    return page.evaluate("JSON.parse(localStorage.getItem('verification-passport')).id")


def share_from_inbox(context: BrowserContext, request_id: str, phone: str) -> Page:
    """The inbox's simulated Telegram app shares `phone` with the request `request_id`."""
    inbox = context.new_page()
    inbox.goto("/sandbox/")
    inbox.fill("#passport-phone", phone)
    share = inbox.locator(f'#passport-requests button[data-id="{request_id}"]')
    expect(share).to_have_text(f"Share {phone}")
    share.click()
    expect(inbox.locator("#passport-message")).to_have_text(f"Shared {phone}.")
    return inbox


def test_passport_journey_turns_verified_without_reload(
    context: BrowserContext, new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    wait_for_step(page, "number")
    expect(page.locator("#passport-option")).to_be_visible()
    expect(page.locator("#passport-start")).to_have_text("Share with Telegram Passport")
    request_id = start_passport(page)

    expect(page.locator("#passport-title")).to_be_focused()
    expect(page).to_have_title(re.compile(r"^Share with Telegram Passport – "))
    qr = page.locator("#passport-qr svg")
    expect(qr).to_be_visible()
    expect(qr).to_have_attribute("role", "img")
    expect(qr).to_have_attribute("aria-label", re.compile("QR code"))
    box = qr.bounding_box()
    assert box is not None and box["width"] == box["height"] > 150
    expect(page.locator("#passport-status")).to_have_text(
        re.compile(r"^Link valid for (10:00|9:\d\d)$")
    )

    # A second tab of the same browser resumes with the same link and QR code.
    second = new_page()
    wait_for_step(second, "passport")
    expect(second.locator("#passport-open")).to_have_attribute(
        "href", page.locator("#passport-open").get_attribute("href") or ""
    )
    expect(second.locator("#passport-qr svg")).to_be_visible()

    share_from_inbox(context, request_id, SHARED_PHONE)

    for tab in (page, second):
        wait_for_step(tab, "done")
        expect(tab.locator("#verified-number")).to_have_text(SHARED_PHONE)
    expect(page.locator("#done-title")).to_be_focused()
    assert js_errors == []


def open_form(context: BrowserContext, request_id: str, phone: str) -> Page:
    """The inbox's simulated Telegram app opens the request's authorization form as `phone`."""
    inbox = context.new_page()
    inbox.goto("/sandbox/")
    inbox.fill("#passport-phone", phone)
    inbox.click(f'#passport-requests button[data-open="{request_id}"]')
    expect(inbox.locator(".passport-asks")).to_have_text(
        re.compile(r"^@sandbox\d+bot asks for: phone number$")
    )
    return inbox


def test_the_app_verifies_the_phone_then_authorizes(
    context: BrowserContext, new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    request_id = start_passport(page)
    # +99966X9012: a Passport without a phone, so the app verifies the number first.
    phone = "+999 66 5 9012"
    inbox = open_form(context, request_id, phone)
    expect(inbox.locator(".passport-holds")).to_have_text(
        f"Your Passport has no phone number. Verify {phone} first; the code arrives in this inbox."
    )
    expect(inbox.locator(".passport-authorize")).to_be_disabled()
    inbox.click(".passport-send-code")
    expect(inbox.locator("#passport-message")).to_have_text(f"Code sent to {phone}.")
    code = inbox.locator("#inbox-codes li", has_text="+9996659012").locator("code")
    expect(code).to_have_text("55555")
    inbox.fill(".passport-code", code.inner_text())
    inbox.click(".passport-verify")
    expect(inbox.locator(".passport-holds")).to_have_text("Your Passport’s phone: +9996659012")
    inbox.click(".passport-authorize")
    expect(inbox.locator("#passport-message")).to_have_text(f"Shared {phone}.")

    wait_for_step(page, "done")
    expect(page.locator("#verified-number")).to_have_text("+999 66 5 9012")
    assert js_errors == []


def test_a_declined_form_keeps_the_page_waiting(
    context: BrowserContext, new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    request_id = start_passport(page)
    # +99966X9011: the Passport already holds the number, verified.
    inbox = open_form(context, request_id, "+999 66 5 9011")
    expect(inbox.locator(".passport-holds")).to_have_text("Your Passport’s phone: +9996659011")
    inbox.click(".passport-decline")
    expect(inbox.locator("#passport-message")).to_have_text("Declined: the bot receives nothing.")
    # Other tests' requests may be listed too: no form of any request stays open.
    expect(inbox.locator(".passport-form:not([hidden])")).to_have_count(0)
    # Nothing reached the site: the request is still open, and the page still waits.
    expect(inbox.locator(f'#passport-requests button[data-id="{request_id}"]')).to_be_visible()
    wait_for_step(page, "passport")
    assert js_errors == []


def test_rejected_share_is_shown_next_to_the_action(
    context: BrowserContext, new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    request_id = start_passport(page)
    # A number the site does not take (not a valid number): Passport data it cannot accept.
    share_from_inbox(context, request_id, "+1000000000")

    wait_for_step(page, "number")
    error = page.locator("#passport-error")
    expect(error).to_have_text(
        "Telegram sent data we cannot accept. Please share your number again."
    )
    expect(page.locator("#verification-alert")).to_have_text(error.inner_text())
    expect(page.locator("#passport-start")).to_be_focused()
    expect(page.locator("#phone-input")).to_have_value("")

    # Both ways are offered again; the page reloads into the same place.
    page.reload()
    wait_for_step(page, "number")
    expect(page.locator("#status-message")).to_have_text(
        "Telegram Passport did not verify your number. Try again, or get a code instead."
    )
    expect(page.locator("#passport-start")).to_be_enabled()
    assert js_errors == []


class Relay:
    """Passes frames through and lets a test push its own (what the server cannot do on demand)."""

    def __init__(self) -> None:
        self.page_side: WebSocketRoute | None = None
        self.snapshot: dict[str, Any] | None = None
        self.answer: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None

    def route(self, page_side: WebSocketRoute) -> None:
        server_side = page_side.connect_to_server()
        self.page_side = page_side

        def from_page(message: str | bytes) -> None:
            answer = self.answer(json.loads(message)) if self.answer else None
            if answer is None:
                server_side.send(message)
            else:
                page_side.send(json.dumps(answer))

        def from_server(message: str | bytes) -> None:
            frame = json.loads(message)
            if frame.get("verification"):
                self.snapshot = frame["verification"]
            page_side.send(message)

        page_side.on_message(from_page)
        server_side.on_message(from_server)

    def push(self, frame: dict[str, Any]) -> None:
        assert self.page_side is not None
        self.page_side.send(json.dumps(frame))


@pytest.fixture
def relay(context: BrowserContext) -> Relay:
    relay = Relay()
    context.route_web_socket(re.compile(r"/ws/verification/$"), relay.route)
    return relay


def test_expired_request_goes_back_to_both_ways(
    relay: Relay, new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    start_passport(page)
    assert relay.snapshot is not None
    relay.push(
        {
            "type": "expired",
            "verification": {**relay.snapshot, "status": "expired", "expires_in": None},
        }
    )
    wait_for_step(page, "number")
    expect(page.locator("#status-message")).to_have_text(
        "The Telegram Passport link expired. Try again, or get a code instead."
    )
    expect(page.locator("#passport-start")).to_be_focused()

    # Trying again opens a new request.
    page.click("#passport-start")
    wait_for_step(page, "passport")
    expect(page.locator("#status-message")).to_be_hidden()
    assert js_errors == []


def test_get_a_code_instead_cancels_the_request(
    new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    start_passport(page)
    page.click("#passport-cancel")
    wait_for_step(page, "number")
    expect(page.locator("#phone-input")).to_be_focused()
    expect(page.locator("#status-message")).to_be_hidden()
    # The server agrees: a reload stays on the number, with nothing to report.
    page.reload()
    wait_for_step(page, "number")
    expect(page.locator("#status-message")).to_be_hidden()
    assert js_errors == []


def test_option_hides_when_the_server_says_passport_is_off(
    relay: Relay, new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    message = "Telegram Passport is not available on this site."
    relay.answer = lambda sent: (
        {"type": "error", "code": "PASSPORT_UNAVAILABLE", "message": message}
        if sent["type"] == "passport_start"
        else None
    )
    page = new_page()
    wait_for_step(page, "number")
    page.click("#passport-start")
    expect(page.locator("#passport-option")).to_be_hidden()
    expect(page.locator("#passport-error")).to_have_text(message)
    expect(page.locator("#phone-input")).to_be_focused()
    assert js_errors == []


@pytest.mark.parametrize("color_scheme", ["light", "dark"])
def test_passport_step_fits_360_px(
    context: BrowserContext, new_page: Callable[..., Page], js_errors: list[str], color_scheme: str
) -> None:
    page = new_page()
    page.emulate_media(color_scheme=color_scheme)
    page.set_viewport_size({"width": 360, "height": 640})
    start_passport(page)
    expect(page.locator("#passport-qr svg")).to_be_visible()
    assert page.evaluate("document.documentElement.scrollWidth") <= 360
    for selector in ("#passport-open", "#passport-qr", "#passport-cancel"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360, selector
    # The code stays dark on white (scannable) whatever the scheme.
    background = page.evaluate(
        "getComputedStyle(document.getElementById('passport-qr')).backgroundColor"
    )
    assert background == "rgb(255, 255, 255)"
    # The countdown ticks without moving anything.
    status = page.locator("#passport-status")
    top = status.bounding_box()["y"]
    text = status.inner_text()
    expect(status).not_to_have_text(text)
    assert status.bounding_box()["y"] == top
    assert js_errors == []
