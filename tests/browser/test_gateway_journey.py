"""A visitor verifies through the Gateway API: the real site with ``TRANSPORTS=gateway`` and its
embedded Gateway sandbox, whose signed delivery reports reach the site over HTTP.

The test number +99966XYYYY gets the code X×6 in the Telegram app. The sandbox reports a message
``sent`` and ``delivered`` on its own, and ``read`` once the sandbox inbox page shows it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

pytestmark = pytest.mark.browser


@pytest.fixture
def gateway_context(browser: Browser, gateway_site: Any) -> Iterator[BrowserContext]:
    context = browser.new_context(base_url=gateway_site.url)
    yield context
    context.close()


def open_page(context: BrowserContext, path: str, js_errors: list[str]) -> Page:
    page = context.new_page()
    page.on("pageerror", lambda error: js_errors.append(f"pageerror: {error}"))
    page.on(
        "console",
        lambda message: (
            js_errors.append(f"console.error: {message.text}") if message.type == "error" else None
        ),
    )
    page.goto(path)
    return page


def test_the_page_shows_delivered_then_read_live_and_verifies(
    gateway_context: BrowserContext, js_errors: list[str]
):
    page = open_page(gateway_context, "/", js_errors)
    html = page.locator("html")
    expect(html).to_have_attribute("data-verification-state", "number")
    # Loading wrote no session: the visitor's typing starts one and connects.
    page.fill("#phone-input", "+9996671234")
    expect(html).to_have_attribute("data-connection", "open")
    page.click("#send-code")

    expect(html).to_have_attribute("data-verification-state", "code")
    expect(page.locator("#code-description")).to_have_text(
        "We sent the code to your Telegram app on another device."
    )
    expect(page.locator("#code-input")).to_have_attribute("maxlength", "6")
    delivery = page.locator("#delivery")
    # The sandbox's signed reports reach the site, which pushes them to the open page.
    expect(delivery).to_have_text("Delivered")

    # Showing the message in the inbox is the visitor reading it in Telegram.
    inbox = open_page(gateway_context, "/sandbox/", js_errors)
    message = inbox.locator("#inbox-codes li").filter(has_text="+9996671234")
    expect(message).to_contain_text("777777")
    expect(message).to_contain_text("phone verification (Gateway API)")
    expect(delivery).to_have_text("Read")

    page.fill("#code-input", "777777")
    expect(page.locator("#step-done h1")).to_have_text("Phone number verified")
    expect(page.locator("#verified-number")).to_have_text("+999 66 7 1234")
    assert js_errors == []
