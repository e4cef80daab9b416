"""The phone field's country picker: the visitor's country picked, the number formatted as it is
typed, a national number verified end to end, and +code switching the country; in English and
Russian.

The sandbox sends a code to any number (a real country's too) and lists it in its inbox
(/sandbox/), where these tests read it, as a visitor reads Telegram.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

pytestmark = pytest.mark.browser


@pytest.fixture
def russian(browser: Browser, live_site: Any) -> Iterator[BrowserContext]:
    """A browser whose language is Russian (Accept-Language and navigator.languages)."""
    context = browser.new_context(base_url=live_site.url, locale="ru-RU")
    yield context
    context.close()


def ready(page: Page) -> None:
    html = page.locator("html")
    # A page without a session (loading writes none) connects once the visitor acts in it.
    expect(html).to_have_attribute("data-connection", re.compile(r"^(waiting|open)$"))
    if html.get_attribute("data-connection") == "waiting":
        page.locator("#phone-input").click()
    expect(html).to_have_attribute("data-connection", "open")
    expect(html).to_have_attribute("data-verification-state", "number")
    # The countries arrive with the formatting data, after the page has loaded.
    expect(page.locator("#phone-country option")).not_to_have_count(1)


def code_from_inbox(context: BrowserContext, e164: str) -> str:
    """The code the sandbox delivered to ``e164``, read in its inbox as a visitor would."""
    inbox = context.new_page()
    inbox.goto("/sandbox/")
    code = (
        inbox.locator("#inbox-codes li").filter(has_text=e164).locator(".verification-inbox-code")
    )
    expect(code).to_have_count(1)
    text = code.inner_text()
    inbox.close()
    return text


def verify_with_inbox_code(page: Page, e164: str) -> None:
    html = page.locator("html")
    expect(html).to_have_attribute("data-verification-state", "code")
    # The whole code submits itself.
    page.locator("#code-input").fill(code_from_inbox(page.context, e164))
    expect(html).to_have_attribute("data-verification-state", "done")


def test_english_picker_formats_a_national_number_that_then_verifies(
    new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    ready(page)
    country = page.get_by_role("combobox", name="Country")
    phone = page.get_by_role("textbox", name="Phone number")
    # The browser speaks American English: the United States is picked, with its example.
    expect(country).to_have_value("US")
    expect(country.locator("option:checked")).to_have_text("United States +1")
    expect(phone).to_have_attribute("placeholder", "(201) 555-0123")

    phone.press_sequentially("2015")
    expect(phone).to_have_value("(201) 5")
    phone.press_sequentially("550147")
    expect(phone).to_have_value("(201) 555-0147")

    page.click("#send-code")
    expect(page.locator("#code-description")).to_contain_text("+1 201-555-0147")
    verify_with_inbox_code(page, "+12015550147")
    expect(page.locator("#verified-number")).to_have_text("+1 201-555-0147")
    assert js_errors == []


def test_typing_plus_and_a_calling_code_switches_the_country(
    new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    ready(page)
    country = page.locator("#phone-country")
    phone = page.locator("#phone-input")

    phone.press_sequentially("+44740012345")
    expect(country).to_have_value("GB")
    expect(country.locator("option:checked")).to_have_text("United Kingdom +44")
    expect(phone).to_have_value("+44 7400 12345")
    # Pasting a whole number in another format switches again.
    phone.fill("")
    phone.focus()
    page.keyboard.insert_text("+7 (771) 000-99-91")
    expect(country).to_have_value("KZ")
    expect(phone).to_have_value("+7 771 000 9991")

    # 00, the international prefix most countries dial, becomes +.
    phone.fill("")
    phone.press_sequentially("00447400")
    expect(phone).to_have_value("+44 7400")
    phone.press_sequentially("123456")
    expect(phone).to_have_value("+44 7400 123456")

    # Picking "Other" writes the number with its calling code; picking a country again keeps the
    # national number, written that country's way.
    country.select_option("GB")
    phone.fill("")
    phone.press_sequentially("07400123456")
    expect(phone).to_have_value("07400 123456")
    country.select_option("")
    expect(phone).to_have_value("+44 7400 123456")
    expect(country).to_have_value("")
    country.select_option("GB")
    expect(phone).to_have_value("7400 123456")

    # The sandbox's test numbers (+999, no country) are kept as typed and still verify.
    phone.fill("")
    phone.press_sequentially("+999 66 2 4321")
    expect(country).to_have_value("")
    expect(phone).to_have_value("+999 66 2 4321")
    page.click("#send-code")
    expect(page.locator("html")).to_have_attribute("data-verification-state", "code")
    page.locator("#code-input").press_sequentially("22222")
    expect(page.locator("#verified-number")).to_have_text("+999 66 2 4321")
    assert js_errors == []


def test_deleting_a_separator_deletes_the_digit_before_it(
    new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    page = new_page()
    ready(page)
    page.locator("#phone-country").select_option("RU")
    phone = page.locator("#phone-input")
    phone.press_sequentially("9123456")
    expect(phone).to_have_value("912 345-6")
    # The caret right after the dash: Backspace takes the 5 with it, the caret stays put.
    phone.evaluate("input => input.setSelectionRange(8, 8)")
    page.keyboard.press("Backspace")
    expect(phone).to_have_value("912 346")
    assert phone.evaluate("input => input.selectionStart") == 6
    # Typing in the middle keeps the caret after the digit typed.
    page.keyboard.type("5")
    expect(phone).to_have_value("912 345-6")
    assert phone.evaluate("input => input.selectionStart") == 7
    assert js_errors == []


def test_russian_picker_takes_a_number_with_the_national_prefix(
    russian: BrowserContext, js_errors: list[str]
) -> None:
    page = russian.new_page()
    page.on("pageerror", lambda error: js_errors.append(str(error)))
    page.goto("/")
    ready(page)
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    country = page.get_by_role("combobox", name="Страна")
    phone = page.get_by_role("textbox", name="Номер телефона")
    expect(country).to_have_value("RU")
    expect(country.locator("option:checked")).to_have_text("Россия +7")
    expect(country.locator("option").first).to_have_text("Другая: введите + и код страны")
    expect(phone).to_have_attribute("placeholder", "912 345-67-89")
    # Countries are sorted as Russian sorts them.
    names = country.locator("option").all_inner_texts()[1:]
    assert names.index("Австралия +61") < names.index("Япония +81")

    phone.press_sequentially("8912")
    expect(phone).to_have_value("8 (912")
    phone.press_sequentially("3456780")
    expect(phone).to_have_value("8 (912) 345-67-80")

    page.click("#send-code")
    expect(page.locator("#code-description")).to_contain_text("+7 912 345-67-80")
    verify_with_inbox_code(page, "+79123456780")
    expect(page.locator("#verified-number")).to_have_text("+7 912 345-67-80")
    expect(page.locator("#done-title")).to_have_text("Номер телефона подтверждён")
    assert js_errors == []


def test_russian_national_number_without_prefix_gets_the_server_s_answer(
    russian: BrowserContext, js_errors: list[str]
) -> None:
    """Not the generic "include the country code": the composed E.164 number reaches the server,
    whose answer (here: a number too short to be valid) is in Russian."""
    page = russian.new_page()
    page.on("pageerror", lambda error: js_errors.append(str(error)))
    page.goto("/")
    ready(page)
    phone = page.locator("#phone-input")
    phone.press_sequentially("9161234567")
    expect(phone).to_have_value("916 123-45-67")
    page.click("#send-code")
    expect(page.locator("html")).to_have_attribute("data-verification-state", "code")
    expect(page.locator("#code-description")).to_contain_text("+7 916 123-45-67")
    page.click("#cancel")
    expect(page.locator("html")).to_have_attribute("data-verification-state", "number")

    phone.fill("")
    phone.press_sequentially("91612")
    page.click("#send-code")
    expect(page.locator("#phone-error")).to_have_text(
        "Неверный номер телефона. Проверьте его и укажите код страны."
    )

    # + and a calling code switch the country here too.
    phone.fill("")
    phone.press_sequentially("+447400123456")
    expect(phone).to_have_value("+44 7400 123456")
    expect(page.locator("#phone-country option:checked")).to_have_text("Великобритания +44")
    assert js_errors == []
