"""What a visitor sees on the verification page, against the real site and its sandbox.

Test numbers +99966XYYYY always receive the code X×5 as an SMS with next type "call"; the site
runs with a 3 s sandbox resend timeout. Each test uses its own number so the per-number rate
limit is never the reason a test passes or fails.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, WebSocketRoute, expect

from tests.browser.visitor import send_code, wait_for_step

pytestmark = pytest.mark.browser


def test_journey_sms_then_call_then_verified(
    new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    send_code(page, "+999 66 2 1234")

    wait_for_step(page, "code")
    description = page.locator("#code-description")
    expect(description).to_have_text("We sent an SMS with the code to +999 66 2 1234.")
    code_input = page.locator("#code-input")
    expect(code_input).to_be_focused()
    expect(code_input).to_have_attribute("maxlength", "5")
    expect(code_input).to_have_attribute("autocomplete", "one-time-code")
    expect(code_input).to_have_attribute("inputmode", "numeric")
    expect(page.locator("#expires")).to_have_text(re.compile(r"^Code valid for \d+:\d\d$"))
    below = page.locator("#expires")
    top_while_counting = below.bounding_box()["y"]

    # The server's resend timeout (3 s) counts down, then the call button replaces the countdown.
    countdown = page.locator("#countdown")
    expect(countdown).to_have_text(re.compile(r"^Telegram will call you in 0:0\d$"))
    resend = page.locator("#resend")
    expect(resend).to_be_visible()
    # No layout shift when the button takes the countdown's place.
    assert below.bounding_box()["y"] == top_while_counting
    expect(resend).to_have_text("Call me instead")
    expect(countdown).to_have_text("")

    resend.click()
    expect(description).to_have_text("Telegram is calling +999 66 2 1234. Listen for the code.")
    # A call has no further delivery option: no countdown and no resend control.
    expect(resend).to_be_hidden()
    expect(page.locator("#countdown")).to_have_text("")

    code_input.press_sequentially("22222")  # auto-submits at the fifth digit
    wait_for_step(page, "done")
    expect(page.locator("#step-done h1")).to_have_text("Phone number verified")
    expect(page.locator("#verified-number")).to_have_text("+999 66 2 1234")

    page.click("#verify-another")
    wait_for_step(page, "number")
    expect(page.locator("#phone-input")).to_have_value("")
    expect(page.locator("#phone-input")).to_be_focused()
    assert js_errors == []


def test_wrong_code_is_shown_under_the_field_with_attempts_left(
    new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    send_code(page, "+999 66 4 1234")
    wait_for_step(page, "code")

    code_input = page.locator("#code-input")
    code_input.press_sequentially("11111")
    error = page.locator("#code-error")
    expect(error).to_be_visible()
    expect(error).to_contain_text("That code is not right. Check it and try again.")
    expect(error).to_contain_text("4 attempts left")
    expect(code_input).to_have_attribute("aria-invalid", "true")
    expect(code_input).to_have_attribute("aria-describedby", re.compile(r"\bcode-error\b"))
    expect(code_input).to_have_value("")
    expect(code_input).to_be_focused()
    expect(page.locator("#verification-alert")).to_contain_text("That code is not right.")

    # Typing again clears the error; "Change number" goes back with the number prefilled.
    code_input.press_sequentially("4")
    expect(error).to_be_hidden()
    expect(code_input).not_to_have_attribute("aria-invalid", "true")
    page.click("#change-number")
    wait_for_step(page, "number")
    expect(page.locator("#phone-input")).to_have_value("+999 66 4 1234")
    expect(page.locator("#phone-input")).to_be_focused()
    assert js_errors == []


def test_reload_resumes_and_a_second_tab_follows_live(
    new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    first = new_page()
    send_code(first, "+999 66 3 1234")
    wait_for_step(first, "code")

    first.reload()
    wait_for_step(first, "code")
    expect(first.locator("#code-description")).to_contain_text("+999 66 3 1234")
    expect(first.locator("#step-code")).to_contain_text("+999 66 3 1234")

    second = new_page()  # same browser context: same Django session
    wait_for_step(second, "code")
    expect(second.locator("#code-description")).to_contain_text("+999 66 3 1234")

    first.locator("#code-input").press_sequentially("33333")
    wait_for_step(first, "done")
    wait_for_step(second, "done")
    expect(second.locator("#verified-number")).to_have_text("+999 66 3 1234")
    assert js_errors == []


def test_scenario_errors_show_under_the_phone_field(
    new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    phone_input = page.locator("#phone-input")
    error = page.locator("#phone-error")

    send_code(page, "+999 66 1 9002")
    expect(error).to_have_text(
        "This phone number is not valid. Check it and include the country code."
    )
    expect(phone_input).to_have_attribute("aria-invalid", "true")
    expect(phone_input).to_have_attribute("aria-describedby", re.compile(r"\bphone-error\b"))
    expect(phone_input).to_be_focused()
    expect(page.locator("html")).to_have_attribute("data-verification-state", "number")

    phone_input.fill("+999 66 1 9001")
    page.click("#send-code")
    expect(error).to_contain_text("Telegram asks us to wait before sending another code.")
    retry = re.compile(r"Try again in 0:(\d\d)\.")
    expect(error).to_contain_text(retry)
    send_button = page.locator("#send-code")
    expect(send_button).to_be_disabled()
    expect(send_button).to_have_text(re.compile(r"^Send code in 0:\d\d$"))
    # The wait counts down.
    first = error.inner_text()
    expect(error).not_to_have_text(first)
    seconds_left = int(retry.search(error.inner_text()).group(1))
    assert 0 < seconds_left < 30
    assert js_errors == []


def test_card_fits_a_small_phone_screen(
    new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    page.set_viewport_size({"width": 360, "height": 640})
    wait_for_step(page, "number")

    def assert_fits() -> None:
        scroll_width = page.evaluate("document.documentElement.scrollWidth")
        assert scroll_width <= 360, f"horizontal scroll: page is {scroll_width}px wide"
        card = page.locator("#verification-card").bounding_box()
        assert card is not None
        assert card["x"] >= 0
        assert card["x"] + card["width"] <= 360

    assert_fits()
    send_box = page.locator("#send-code").bounding_box()
    assert send_box is not None and send_box["height"] >= 44

    send_code(page, "+999 66 5 1234")
    wait_for_step(page, "code")
    expect(page.locator("#resend")).to_be_visible()
    assert_fits()
    for selector in ("#resend", "#change-number", "#cancel"):
        box = page.locator(selector).bounding_box()
        assert box is not None and box["height"] >= 44, selector
    assert js_errors == []


def test_reconnects_and_resumes_after_the_connection_drops(
    context: BrowserContext, new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    sockets: list[WebSocketRoute] = []

    def pass_through(socket: WebSocketRoute) -> None:
        socket.connect_to_server()
        sockets.append(socket)

    context.route_web_socket(re.compile(r"/ws/verification/$"), pass_through)
    page = new_page()
    send_code(page, "+999 66 8 1234")
    wait_for_step(page, "code")

    sockets[-1].close(code=1012, reason="restarting")  # the connection drops mid-flow
    expect(page.locator("html")).to_have_attribute("data-connection", "closed")
    expect(page.locator("#connection-message")).to_have_text("Reconnecting…")

    wait_for_step(page, "code")  # reconnected with backoff; the server's state frame resumes
    expect(page.locator("#connection-message")).to_be_hidden()
    expect(page.locator("#code-description")).to_contain_text("+999 66 8 1234")
    assert len(sockets) == 2
    page.locator("#code-input").press_sequentially("88888")
    wait_for_step(page, "done")
    assert js_errors == []


def test_says_so_when_websockets_cannot_connect(
    context: BrowserContext, new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    context.route_web_socket(re.compile(r"/ws/verification/$"), lambda socket: socket.close())
    page = new_page()
    # The page connects once the visitor acts (loading writes no session).
    page.locator("#phone-input").click()
    message = page.locator("#connection-message")
    expect(message).to_contain_text("The server did not accept the live connection")
    expect(page.locator("html")).to_have_attribute("data-connection", "closed")
    expect(page.locator("html")).to_have_attribute("data-verification-state", "number")
    expect(page.locator("#phone-input")).to_be_visible()
    assert js_errors == []


def test_says_so_when_the_browser_has_no_websocket(
    context: BrowserContext, new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    context.add_init_script("delete window.WebSocket;")
    page = new_page()
    expect(page.locator("#connection-message")).to_contain_text(
        "Live updates are unavailable: this page needs WebSockets"
    )
    assert js_errors == []


def test_sandbox_inbox_lists_the_code_sent(
    new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    send_code(page, "+999 66 6 1234")
    wait_for_step(page, "code")

    inbox = new_page("/sandbox/")
    newest = inbox.locator("#inbox-codes li").first
    expect(newest).to_contain_text("66666")
    expect(newest).to_contain_text(re.compile(r"\+999\s?66\s?6\s?1234"))
    expect(newest.get_by_role("button", name="Copy code 66666")).to_be_visible()
    expect(inbox.locator("#inbox-empty")).to_be_hidden()
    assert js_errors == []


def test_page_speaks_the_visitors_language(
    browser: Browser, live_site: Any, js_errors: list[str]
) -> None:
    """Every string, including the ones the script fills in, comes from Django's translations."""
    context = browser.new_context(base_url=live_site.url, locale="ru-RU")
    try:
        page = context.new_page()
        page.on("pageerror", lambda error: js_errors.append(f"pageerror: {error}"))
        page.goto("/")
        expect(page.locator("html")).to_have_attribute("lang", "ru")
        send_code(page, "+999 66 2 5678")
        wait_for_step(page, "code")
        description = page.locator("#code-description")
        expect(description).to_contain_text("+999 66 2 5678")
        expect(description).to_contain_text("SMS")
        assert "We sent" not in description.inner_text()
        expect(page.locator("#countdown")).not_to_contain_text("Telegram will call you")
        expect(page.locator("#resend")).to_be_visible()
        assert page.locator("#resend").inner_text() != "Call me instead"
    finally:
        context.close()
    assert js_errors == []
