"""The visitor page's behaviour at its edges: waits, lost connections, expiry, focus and wording.

Some tests sit between the page and the real server (Playwright's WebSocket routing) to drop the
connection, or to answer a frame the sandbox cannot produce on demand (an expiry, a rate limit).
Each test uses its own number; the site runs with a 3 s sandbox resend timeout.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import BrowserContext, Page, WebSocketRoute, expect

from tests.browser.visitor import send_code, wait_for_step

pytestmark = pytest.mark.browser

# Every text the polite announcer was given, in order (the region is emptied between messages).
RECORD_ANNOUNCEMENTS = """
window.__announced = [];
document.addEventListener("DOMContentLoaded", () => {
  const region = document.getElementById("verification-announcer");
  new MutationObserver(() => {
    if (region.textContent) window.__announced.push(region.textContent);
  }).observe(region, { childList: true, characterData: true, subtree: true });
});
"""


class Relay:
    """Passes frames between the page and the server, and lets a test step in."""

    def __init__(self) -> None:
        self.sockets: list[WebSocketRoute] = []
        self.offline = False
        self.snapshot: dict[str, Any] | None = None
        # rewrite(frame) -> frame, applied to what the server sends.
        self.rewrite: Callable[[dict[str, Any]], dict[str, Any]] | None = None
        # answer(message) -> frame to send back instead of passing the message on, or None.
        self.answer: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None

    def route(self, page_side: WebSocketRoute) -> None:
        if self.offline:
            page_side.close()
            return
        server_side = page_side.connect_to_server()
        self.sockets.append(page_side)

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
            if self.rewrite:
                frame = self.rewrite(frame)
            page_side.send(json.dumps(frame))

        page_side.on_message(from_page)
        server_side.on_message(from_server)

    def push(self, frame: dict[str, Any]) -> None:
        """Sends `frame` to the page as if the server had."""
        self.sockets[-1].send(json.dumps(frame))


@pytest.fixture
def relay(context: BrowserContext) -> Relay:
    relay = Relay()
    context.route_web_socket(re.compile(r"/ws/verification/$"), relay.route)
    return relay


def test_a_wait_for_one_number_does_not_block_another(
    new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    send_code(page, "+999 66 1 9001")  # the sandbox answers FLOOD_WAIT 30 s
    send_button = page.locator("#send-code")
    expect(send_button).to_have_text(re.compile(r"^Send code in 0:\d\d$"))
    expect(send_button).to_be_disabled()

    page.fill("#phone-input", "+999 66 7 2201")
    expect(send_button).to_have_text("Send code")
    expect(send_button).to_be_enabled()
    expect(page.locator("#phone-error")).to_be_hidden()

    page.fill("#phone-input", "+999 66 1 9001")  # back to the number that must wait
    expect(send_button).to_be_disabled()

    page.fill("#phone-input", "+999 66 7 2201")
    send_button.click()
    wait_for_step(page, "code")
    assert js_errors == []


def test_a_send_limit_says_what_was_limited_and_when_once(
    relay: Relay, new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    relay.answer = lambda message: (
        {
            "type": "error",
            "code": "RATE_LIMITED",
            "message": "Too many attempts. Please wait before trying again.",
            "retry_after": 61,
        }
        if message["type"] == "send_code"
        else None
    )
    page = new_page()
    send_code(page, "+999 66 7 2202")
    error = page.locator("#phone-error")
    expect(error).to_have_text(
        re.compile(r"^Too many codes were requested\. You can ask for a new code in 1:0\d\.$")
    )
    expect(page.locator("#phone-input")).to_be_focused()
    assert js_errors == []


@pytest.mark.parametrize(
    ("limit", "said", "other_number_waits"),
    [
        ("phone", "for this number", False),
        ("address", "from your network", True),
        ("session", "from this browser", True),
    ],
)
def test_a_send_limit_names_what_it_limited(
    relay: Relay,
    new_page: Callable[..., Page],
    js_errors: list[str],
    limit: str,
    said: str,
    other_number_waits: bool,
) -> None:
    """A limit on the number holds only that number; a limit on the network holds every one."""
    relay.answer = lambda message: (
        {
            "type": "error",
            "code": "RATE_LIMITED",
            "message": "Too many codes were requested. Please wait a while.",
            "retry_after": 95,
            "limit": limit,
        }
        if message["type"] == "send_code" and message["phone_number"].endswith("2204")
        else None
    )
    page = new_page()
    send_code(page, "+999 66 7 2204")
    expect(page.locator("#phone-error")).to_have_text(
        re.compile(
            rf"^Too many codes were requested {said}\. You can ask for a new code in 1:3\d\.$"
        )
    )
    send_button = page.locator("#send-code")
    expect(send_button).to_be_disabled()
    page.fill("#phone-input", "+999 66 7 2205")
    if other_number_waits:
        expect(send_button).to_have_text(re.compile(r"^Send code in 1:3\d$"))
        expect(send_button).to_be_disabled()
    else:
        expect(send_button).to_have_text("Send code")
        expect(send_button).to_be_enabled()
    assert js_errors == []


def test_an_expired_code_on_verify_leaves_focus_on_the_number(
    relay: Relay, new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    send_code(page, "+999 66 7 2203")
    wait_for_step(page, "code")

    def expired(message: dict[str, Any]) -> dict[str, Any] | None:
        if message["type"] != "verify":
            return None
        return {
            "type": "error",
            "code": "PHONE_CODE_EXPIRED",
            "message": "This code has expired. Request a new one.",
            "verification": {**relay.snapshot, "status": "expired", "expires_in": 0},
        }

    relay.answer = expired
    page.locator("#code-input").press_sequentially("77777")
    wait_for_step(page, "number")
    expect(page.locator("#status-message")).to_contain_text("This code has expired.")
    expect(page.locator("#phone-input")).to_be_focused()
    expect(page.locator("#phone-input")).to_have_value("+999 66 7 2203")
    assert js_errors == []


def test_a_code_typed_offline_can_be_sent_once_reconnected(
    relay: Relay, new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    send_code(page, "+999 66 7 2204")
    wait_for_step(page, "code")

    relay.offline = True
    relay.sockets[-1].close(code=1012, reason="restarting")
    expect(page.locator("html")).to_have_attribute("data-connection", "closed")
    code_input = page.locator("#code-input")
    code_input.press_sequentially("77777")
    code_error = page.locator("#code-error")
    expect(code_error).to_be_visible()
    expect(code_error).to_contain_text("Not connected to the server right now.")
    verify = page.locator("#verify-code")
    expect(verify).to_be_visible()

    relay.offline = False
    wait_for_step(page, "code")
    expect(code_error).to_be_hidden()
    expect(code_input).to_have_value("77777")
    verify.click()
    wait_for_step(page, "done")
    assert js_errors == []


def test_no_stale_error_is_left_for_screen_readers(
    new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    send_code(page, "+999 66 7 2205")
    wait_for_step(page, "code")
    alert = page.locator("#verification-alert")

    page.locator("#code-input").press_sequentially("11111")
    expect(alert).to_contain_text("That code is not right.")
    page.locator("#resend").click()  # the call replaces the SMS
    expect(page.locator("#code-description")).to_contain_text("Telegram is calling")
    expect(alert).to_have_text("")

    page.locator("#code-input").press_sequentially("11111")
    expect(alert).to_contain_text("That code is not right.")
    page.locator("#code-input").press_sequentially("77777")
    wait_for_step(page, "done")
    expect(alert).to_have_text("")
    assert js_errors == []


def test_expiry_does_not_take_the_keyboard_and_is_announced_before(
    context: BrowserContext, relay: Relay, new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    context.add_init_script(RECORD_ANNOUNCEMENTS)

    def soon(frame: dict[str, Any]) -> dict[str, Any]:
        if frame.get("verification") and frame["verification"].get("status") == "code_sent":
            frame["verification"] = {**frame["verification"], "expires_in": 61}
        return frame

    relay.rewrite = soon
    page = new_page()
    send_code(page, "+999 66 7 2206")
    wait_for_step(page, "code")
    page.wait_for_function(
        "window.__announced.some((text) => text === 'The code expires in 1:00.')"
    )

    code_input = page.locator("#code-input")
    code_input.press_sequentially("12")
    expired = {**relay.snapshot, "status": "expired", "expires_in": 0}
    relay.push({"type": "expired", "verification": expired})
    wait_for_step(page, "number")
    expect(page.locator("#status-message")).to_contain_text("The code expired.")
    expect(page.locator("#number-title")).to_be_focused()
    page.keyboard.type("34")  # the visitor was typing: nothing they care about is overwritten
    expect(page.locator("#phone-input")).to_have_value("+999 66 7 2206")
    assert js_errors == []


def test_no_delivery_is_offered_after_the_code_expires(
    relay: Relay, new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    def late_resend(frame: dict[str, Any]) -> dict[str, Any]:
        if frame.get("verification") and frame["verification"].get("status") == "code_sent":
            frame["verification"] = {**frame["verification"], "resend_in": 45, "expires_in": 10}
        return frame

    relay.rewrite = late_resend
    page = new_page()
    send_code(page, "+999 66 7 2207")
    wait_for_step(page, "code")
    expect(page.locator("#expires")).to_have_text(re.compile(r"^Code valid for 0:(10|0\d)$"))
    expect(page.locator("#countdown")).to_have_text("")
    expect(page.locator("#resend")).to_be_hidden()
    assert js_errors == []


def test_a_digit_code_has_a_verify_button_as_well_as_auto_submit(
    new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    send_code(page, "+999 66 7 2208")
    wait_for_step(page, "code")
    verify = page.locator("#verify-code")
    expect(verify).to_be_visible()
    expect(verify).to_have_text("Verify")

    page.locator("#code-input").press_sequentially("777")
    verify.click()
    expect(page.locator("#code-error")).to_have_text("The code has 5 characters.")
    page.locator("#code-input").press_sequentially("77")  # completes the code: auto-submits
    wait_for_step(page, "done")
    assert js_errors == []


@pytest.mark.parametrize("exit_button", ["#cancel", "#change-number"])
def test_both_exits_from_the_code_step_keep_the_number(
    exit_button: str, new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    number = "+999 66 7 2209" if exit_button == "#cancel" else "+999 66 7 2210"
    page = new_page()
    send_code(page, number)
    wait_for_step(page, "code")
    page.click(exit_button)
    wait_for_step(page, "number")
    expect(page.locator("#phone-input")).to_have_value(number)
    expect(page.locator("#phone-input")).to_be_focused()
    assert js_errors == []


def test_the_code_step_shows_the_number_once(
    new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    send_code(page, "+999 66 7 2211")
    wait_for_step(page, "code")
    expect(page.locator("#code-description")).to_contain_text("+999 66 7 2211")
    assert page.locator("#step-code").inner_text().count("+999 66 7 2211") == 1
    expect(page).to_have_title(re.compile(r"^Enter the code – "))
    page.locator("#code-input").press_sequentially("77777")
    wait_for_step(page, "done")
    expect(page).to_have_title(re.compile(r"^Phone number verified – "))
    assert js_errors == []


def test_a_missed_call_prefix_is_grouped_like_the_number(
    new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    send_code(page, "+999 66 7 9005")
    wait_for_step(page, "code")
    expect(page.locator("#code-prefix")).to_have_text("+999 66 0 0")
    expect(page.locator("#code-input")).to_have_attribute("maxlength", "4")
    assert js_errors == []


def test_an_sms_word_is_asked_for_as_a_word(
    new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    send_code(page, "+999 66 7 9007")
    wait_for_step(page, "code")
    expect(page.get_by_label("Word from the SMS")).to_be_focused()
    code_input = page.locator("#code-input")
    expect(code_input).to_have_attribute("inputmode", "text")
    font = code_input.evaluate("(input) => getComputedStyle(input).fontFamily")
    assert "monospace" not in font
    assert js_errors == []


def test_the_fragment_link_says_it_opens_a_new_tab(
    new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    send_code(page, "+999 66 7 9006")
    wait_for_step(page, "code")
    link = page.locator("#fragment-link")
    expect(link).to_be_visible()
    expect(link).to_have_accessible_name("Open Fragment (opens in a new tab)")
    assert js_errors == []


def test_small_screens_keep_numbers_and_links_on_one_line(
    browser: Any, live_site: Any, js_errors: list[str]
) -> None:
    context = browser.new_context(
        base_url=live_site.url, locale="ru-RU", viewport={"width": 320, "height": 640}
    )
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: js_errors.append(f"pageerror: {error}"))
        page.goto("/")
        wait_for_step(page, "number")
        hint_number = page.locator("#phone-hint .verification-nowrap").first
        expect(hint_number).to_have_text("+999 66 2 1234")
        line = page.evaluate(
            "parseFloat(getComputedStyle(document.getElementById('phone-hint')).lineHeight)"
        )
        assert hint_number.bounding_box()["height"] <= line + 1

        page.set_viewport_size({"width": 360, "height": 640})
        send_code(page, "+999 66 7 2212")
        wait_for_step(page, "code")
        change, cancel = page.locator("#change-number"), page.locator("#cancel")
        expect(change).to_have_text("Изменить номер")
        change_box, cancel_box = change.bounding_box(), cancel.bounding_box()
        assert change_box["y"] == cancel_box["y"]
        assert change_box["height"] == cancel_box["height"] < 50
    finally:
        context.close()
    assert js_errors == []


def test_the_gateway_delivery_status_is_shown_live_under_the_code(
    relay: Relay, new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    # The sandbox sends through sender accounts; the frames a Gateway API send would bring are
    # injected, as the server pushes them (docs/protocol.md, `delivery`).
    page = new_page()
    send_code(page, "+999 66 2 9310")
    wait_for_step(page, "code")
    delivery = page.locator("#delivery")
    expect(delivery).to_be_hidden()

    def gateway(status: str) -> dict[str, Any]:
        assert relay.snapshot is not None
        return {**relay.snapshot, "transport": "gateway", "delivery": status}

    relay.push({"type": "state", "verification": gateway("sent")})
    expect(delivery).to_have_text("Sent")
    relay.push({"type": "delivery", "status": "delivered", "verification": gateway("delivered")})
    expect(delivery).to_have_text("Delivered")
    relay.push({"type": "delivery", "status": "read"})  # a frame without a snapshot
    expect(delivery).to_have_text("Read")
    expect(page.locator("#code-input")).to_be_focused()  # a status never takes the keyboard
    relay.push({"type": "delivery", "status": "shredded", "verification": gateway("shredded")})
    expect(delivery).to_be_hidden()  # a status from a newer server is not shown raw

    # A send through sender accounts reports nothing.
    relay.push({"type": "state", "verification": {**gateway("read"), "transport": "sender"}})
    expect(delivery).to_be_hidden()
    assert js_errors == []
