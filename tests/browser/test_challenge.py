"""The challenge before sending, in Chromium: the page solves a real hashcash puzzle (default
difficulty) in a Web Worker, shows and announces "Checking your browser…", and the code is sent.

The site here challenges every send (``CHALLENGE_AFTER`` 0), so the first send shows it.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect

from tests.browser.conftest import LiveSite, serve_site

pytestmark = pytest.mark.browser

CHECKING = "Checking your browser…"

# Records every text the status line and the live regions show, with when, so a state that
# lasts a fraction of a second is still seen.
RECORD = """() => {
    window.seen = [];
    const watch = (id) => {
        const node = document.getElementById(id);
        const note = () => window.seen.push({
            id, text: node.textContent, hidden: node.hidden, at: performance.now(),
            focus: document.activeElement?.id,
        });
        new MutationObserver(note).observe(
            node, {childList: true, characterData: true, subtree: true, attributes: true});
    };
    ["status-message", "verification-announcer", "verification-alert"].forEach(watch);
}"""


@pytest.fixture(scope="module")
def challenge_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    yield from serve_site(
        tmp_path_factory.mktemp("challenge-site"), VERIFICATION_CHALLENGE_AFTER="0/3600"
    )


@pytest.fixture
def challenge_page(
    browser: Browser, challenge_site: LiveSite, js_errors: list[str]
) -> Iterator[tuple[Page, list[str]]]:
    context: BrowserContext = browser.new_context(
        base_url=challenge_site.url, viewport={"width": 1024, "height": 768}
    )
    requests: list[str] = []
    page = context.new_page()
    page.on("pageerror", lambda error: js_errors.append(f"pageerror: {error}"))
    page.on(
        "console",
        lambda m: js_errors.append(f"console.error: {m.text}") if m.type == "error" else None,
    )
    page.on("request", lambda request: requests.append(request.url))
    page.goto("/")
    yield page, requests
    context.close()


def test_the_page_solves_a_challenge_in_a_worker_and_sends(
    challenge_page: tuple[Page, list[str]], js_errors: list[str]
):
    page, requests = challenge_page
    html = page.locator("html")
    expect(html).to_have_attribute("data-verification-state", "number")
    # Nothing of the challenge loads until one arrives.
    assert not [url for url in requests if "verify_challenge" in url]

    page.evaluate(RECORD)
    page.locator("#phone-input").fill("+999 66 2 1234")
    page.locator("#send-code").click()

    expect(html).to_have_attribute("data-verification-state", "code")
    expect(page.locator("#code-description")).to_have_text(
        "We sent an SMS with the code to +999 66 2 1234."
    )
    seen = page.evaluate("window.seen")
    status = [entry for entry in seen if entry["id"] == "status-message"]
    shown = [entry for entry in status if entry["text"] == CHECKING and not entry["hidden"]]
    assert shown, status
    announced = [e for e in seen if e["id"] == "verification-announcer" and e["text"] == CHECKING]
    assert announced, seen
    # Solved in the worker the module started (not on the page's thread).
    worker = [url for url in requests if Path(url).name.startswith("verify_challenge_worker")]
    module = [url for url in requests if Path(url).name.startswith("verify_challenge.")]
    assert worker and module, requests
    expect(html).to_have_attribute("data-challenge", "solved")
    checking = shown[0]["at"]
    after = next(e["at"] for e in status if e["at"] > checking and e["text"] != CHECKING)
    print(f"checking the browser took {after - checking:.0f} ms (solving and the round trip)")
    # An error never showed: the repeated send passed the check.
    assert not [e for e in seen if e["id"] == "verification-alert" and e["text"]]
    assert js_errors == []


def test_the_phone_field_keeps_focus_while_the_browser_is_checked(
    challenge_page: tuple[Page, list[str]], js_errors: list[str]
):
    page, _ = challenge_page
    page.evaluate(RECORD)
    page.locator("#phone-input").fill("+999 66 3 1234")
    page.locator("#phone-input").press("Enter")
    expect(page.locator("html")).to_have_attribute("data-verification-state", "code")
    checking = [e for e in page.evaluate("window.seen") if e["text"] == CHECKING]
    assert checking
    # Focus stayed in the field the visitor pressed Enter in while the browser was checked...
    assert {e["focus"] for e in checking} == {"phone-input"}, checking
    # ...and the code step takes it once the code is sent, as without a challenge.
    expect(page.locator("#code-input")).to_be_focused()
    assert js_errors == []
