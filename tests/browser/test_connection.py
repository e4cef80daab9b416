"""How the page reacts when the live connection ends: the server's close codes (docs/protocol.md)
and a refused handshake, each with its own message, and a reconnect only where one can help.

Playwright's WebSocket routing stands between the page and the real server and closes the page's
socket with the code the server would send.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from playwright.sync_api import BrowserContext, Page, WebSocketRoute, expect

from tests.browser.visitor import wait_for_step

pytestmark = pytest.mark.browser

SOCKET = re.compile(r"/ws/verification/$")


def pass_through(context: BrowserContext) -> list[WebSocketRoute]:
    sockets: list[WebSocketRoute] = []

    def route(socket: WebSocketRoute) -> None:
        socket.connect_to_server()
        sockets.append(socket)

    context.route_web_socket(SOCKET, route)
    return sockets


@pytest.mark.parametrize(
    ("code", "message"),
    [
        (4008, "The server closed the connection because this page sent too many messages"),
        (4500, "The server cannot keep track of this visit right now. Trying again…"),
    ],
)
def test_a_close_the_page_can_recover_from_is_explained_then_reconnected(
    code: int,
    message: str,
    context: BrowserContext,
    new_page: Callable[..., Page],
    js_errors: list[str],
) -> None:
    sockets = pass_through(context)
    page = new_page()
    page.fill("#phone-input", "+999 66 8 1250")
    page.click("#send-code")
    wait_for_step(page, "code")

    sockets[-1].close(code=code)
    banner = page.locator("#connection-message")
    expect(banner).to_contain_text(message)
    expect(banner).not_to_contain_text("another browser")
    expect(banner.get_by_role("button")).to_have_count(0)

    wait_for_step(page, "code")  # back with a backoff, resumed from the server's state
    expect(banner).to_be_hidden()
    assert len(sockets) == 2
    page.locator("#code-input").press_sequentially("88888")
    wait_for_step(page, "done")
    assert js_errors == []


def test_a_rotated_owner_token_asks_for_a_reload_and_does_not_reconnect(
    context: BrowserContext, new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    sockets = pass_through(context)
    page = new_page()
    page.clock.install()
    wait_for_step(page, "number")

    sockets[-1].close(code=4403)
    html = page.locator("html")
    expect(html).to_have_attribute("data-connection", "ended")
    banner = page.locator("#connection-message")
    expect(banner).to_contain_text("You signed in or out in another tab. Reload the page")
    page.clock.run_for(10 * 60 * 1000)  # long past any backoff
    assert len(sockets) == 1
    expect(html).to_have_attribute("data-connection", "ended")

    banner.get_by_role("button", name="Reload the page").click()
    wait_for_step(page, "number")
    expect(banner).to_be_hidden()
    assert len(sockets) == 2
    assert js_errors == []


def test_a_refused_handshake_says_what_to_check_in_the_visitors_language(
    context: BrowserContext, new_page: Callable[..., Page], js_errors: list[str]
) -> None:
    # A rejected origin: the server refuses the handshake, so the page never sees `open`.
    context.route_web_socket(SOCKET, lambda socket: socket.close())
    page = new_page()
    # The page connects once the visitor acts; the session it gets makes the next load connect.
    page.locator("#phone-input").click()
    banner = page.locator("#connection-message")
    expect(banner).to_contain_text("The server did not accept the live connection")
    expect(banner).not_to_contain_text("another browser")
    expect(page.locator("#phone-input")).to_be_visible()

    russian = page.get_by_role("form", name="Language").get_by_role("button", name="Русский")
    russian.click()
    expect(page.locator("html")).to_have_attribute("lang", "ru")
    expect(banner).to_contain_text("Сервер не принял")
    assert js_errors == []
