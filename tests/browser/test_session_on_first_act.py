"""Sessions only when needed, in Chromium: loading the page writes no session and opens no
socket; the visitor's first act in the page starts the session and connects; a reload with a
session connects at once."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, expect

pytestmark = pytest.mark.browser


def session_cookie(context: BrowserContext) -> str | None:
    return next((c["value"] for c in context.cookies() if c["name"] == "sessionid"), None)


def test_loading_writes_no_session_and_the_first_keystroke_connects(
    new_page: Callable[..., Page], context: BrowserContext, js_errors: list[str]
):
    sockets: list[str] = []
    page = new_page()
    page.on("websocket", lambda ws: sockets.append(ws.url))
    html = page.locator("html")
    # The script ran, and waits for the visitor.
    expect(html).to_have_attribute("data-connection", "waiting")
    expect(html).to_have_attribute("data-verification-state", "number")
    expect(page.locator("#phone-input")).to_be_editable()

    # Neither a script's focus nor an event a script makes is the visitor acting: the page asks
    # for no session (its request would start within the event's dispatch).
    asked = page.evaluate(
        """() => {
            const asked = [];
            const fetch = window.fetch;
            window.fetch = (...args) => (asked.push(String(args[0])), fetch(...args));
            const input = document.getElementById("phone-input");
            input.focus();
            input.dispatchEvent(new KeyboardEvent("keydown", {key: "9", bubbles: true}));
            input.dispatchEvent(new InputEvent("input", {bubbles: true}));
            input.dispatchEvent(new PointerEvent("pointerdown", {bubbles: true}));
            return asked;
        }"""
    )
    assert asked == []
    assert session_cookie(context) is None
    assert sockets == []
    expect(html).to_have_attribute("data-connection", "waiting")

    # The visitor's first keystroke: a session, then the socket. The key is not lost.
    page.locator("#phone-input").press("+")
    expect(html).to_have_attribute("data-connection", "open")
    assert session_cookie(context)
    assert len(sockets) == 1
    expect(page.locator("#phone-input")).to_have_value("+")
    assert js_errors == []


def test_a_visitor_with_a_session_connects_on_load(
    new_page: Callable[..., Page], context: BrowserContext, js_errors: list[str]
):
    page = new_page()
    html = page.locator("html")
    expect(html).to_have_attribute("data-connection", "waiting")
    page.locator("#phone-input").click()
    expect(html).to_have_attribute("data-connection", "open")
    first = session_cookie(context)

    page.reload()
    # No act needed: the page knows the browser has a session, and resumes.
    expect(html).to_have_attribute("data-connection", "open")
    assert session_cookie(context) == first
    assert js_errors == []


def test_a_visitor_who_sends_before_the_socket_is_open_still_gets_a_code(
    new_page: Callable[..., Page], js_errors: list[str]
):
    """The first act and the send can come close together (a pasted number, Enter): the send
    waits for the connection rather than being lost."""
    page = new_page()
    html = page.locator("html")
    expect(html).to_have_attribute("data-connection", "waiting")
    page.locator("#phone-input").fill("+9996621234")
    page.locator("#phone-input").press("Enter")
    expect(html).to_have_attribute("data-verification-state", "code")
    expect(html).to_have_attribute("data-connection", "open")
    assert js_errors == []
