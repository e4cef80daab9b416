"""What a visitor does on the page, shared by the browser tests."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect


def wait_for_step(page: Page, step: str) -> None:
    """Wait until the page is connected and shows ``step``; a page without a session (loading
    writes none) connects once the visitor acts in it, so the visitor clicks the number first."""
    html = page.locator("html")
    expect(html).to_have_attribute("data-connection", re.compile(r"^(waiting|open)$"))
    if html.get_attribute("data-connection") == "waiting":
        page.locator("#phone-input").click()
    expect(html).to_have_attribute("data-connection", "open")
    expect(html).to_have_attribute("data-verification-state", step)


def send_code(page: Page, phone: str) -> None:
    wait_for_step(page, "number")
    page.fill("#phone-input", phone)
    page.click("#send-code")
