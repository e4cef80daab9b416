"""The site's language switch (Django's set_language): a plain form, so it works with and without
JavaScript, and the live connection follows the language chosen."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.browser


def switch(page: Page) -> Any:
    return page.get_by_role("form", name="Language")


def test_switching_to_russian_and_back(new_page: Callable[..., Page], js_errors: list[str]) -> None:
    page = new_page()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    english = switch(page).get_by_role("button", name="English")
    expect(english).to_have_attribute("aria-current", "true")

    switch(page).get_by_role("button", name="Русский").click()
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(page.locator("#number-title")).to_have_text("Ваш номер телефона")
    expect(switch(page)).to_have_count(0)  # the form's name is translated too
    russian = page.get_by_role("form", name="Язык").get_by_role("button", name="Русский")
    expect(russian).to_have_attribute("aria-current", "true")

    # The socket's answers come in the chosen language as well (the language cookie). The page
    # has no session yet: the visitor's typing starts one and connects.
    page.fill("#phone-input", "12")
    expect(page.locator("html")).to_have_attribute("data-connection", "open")
    page.click("#send-code")
    expect(page.locator("#phone-error")).to_have_text(
        "Неверный номер телефона. Проверьте его и укажите код страны."
    )

    page.get_by_role("form", name="Язык").get_by_role("button", name="English").click()
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#number-title")).to_have_text("Your phone number")
    expect(page.locator("#send-code")).to_have_text("Send code")
    assert js_errors == []


def test_the_switch_works_without_javascript(browser: Browser, live_site: Any) -> None:
    context = browser.new_context(base_url=live_site.url, java_script_enabled=False)
    try:
        page = context.new_page()
        page.goto("/")
        expect(page.locator("html")).to_have_attribute("lang", "en")
        switch(page).get_by_role("button", name="Русский").click()
        expect(page.locator("html")).to_have_attribute("lang", "ru")
        expect(page.locator("#number-title")).to_have_text("Ваш номер телефона")
        expect(page).to_have_url(live_site.url + "/")
    finally:
        context.close()
