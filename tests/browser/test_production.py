"""passportsite deployed as the README says (DEBUG off, collectstatic, daphne), in Chromium."""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Browser, expect

from tests.test_deployment import documented_production_settings

pytestmark = pytest.mark.browser

PROJECT_DIR = Path(__file__).resolve().parents[2]


@pytest.fixture
def deployed_site(
    tmp_path: Path,
    site_environment: Callable[..., dict[str, str]],
    free_port: Callable[[], int],
    wait_until: Callable[..., Any],
) -> Iterator[str]:
    """daphne on the README's production settings, after the README's release steps.

    The test has no TLS-terminating proxy, so it speaks plain HTTP to 127.0.0.1 with
    ``SECURE_SSL_REDIRECT=0`` (otherwise every request is redirected to an https:// address
    nothing serves) and without ``SECURE_PROXY_SSL_HEADER`` (no proxy sets it). Everything else,
    the secure cookies and HSTS included, stays as documented; Chromium keeps secure cookies
    from http://127.0.0.1, which it counts as a secure context.
    """
    port = free_port()
    production = documented_production_settings()
    del production["SECURE_PROXY_SSL_HEADER"]
    production.update(
        SECRET_KEY=secrets.token_urlsafe(50),
        ALLOWED_HOSTS="127.0.0.1",
        CSRF_TRUSTED_ORIGINS=f"http://127.0.0.1:{port}",
        SITE_URL=f"http://127.0.0.1:{port}",
        SECURE_SSL_REDIRECT="0",
        VERIFICATION_TRUSTED_PROXIES="0",
        STATIC_ROOT=str(tmp_path / "static"),
        DATABASE_URL=f"sqlite:///{tmp_path / 'db.sqlite3'}",
        SANDBOX_STATE_FILE=str(tmp_path / "sandbox.json"),
    )
    env = site_environment(**production)
    assert env["DEBUG"] == "0"
    log_path = tmp_path / "site.log"
    with log_path.open("wb") as log:
        for step in (["migrate", "--noinput", "-v0"], ["collectstatic", "--noinput", "-v0"]):
            subprocess.run(
                [sys.executable, "manage.py", *step],
                cwd=PROJECT_DIR,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                check=True,
                timeout=120,
            )
        process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port)]
            + ["passportsite.asgi:application"],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"

    def serving() -> bool:
        if process.poll() is not None:
            pytest.fail(f"daphne exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url + "/", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    try:
        wait_until(serving, timeout=60, what=f"{url}/ to answer")
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        print(log_path.read_text(errors="replace")[-5000:])


def test_the_page_works_with_debug_off(browser: Browser, deployed_site: str) -> None:
    context = browser.new_context(base_url=deployed_site)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"pageerror: {error}"))
    page.on(
        "console",
        lambda message: errors.append(message.text) if message.type == "error" else None,
    )
    missing: list[str] = []
    page.on("response", lambda r: missing.append(r.url) if r.status >= 400 else None)
    scripts: list[Any] = []
    page.on("response", lambda r: scripts.append(r) if r.url.endswith(".js") else None)
    page.goto("/")

    # The script ran: it shows the first step and waits for the visitor, with no session yet.
    html = page.locator("html")
    expect(html).to_have_attribute("data-connection", "waiting")
    expect(html).to_have_attribute("data-verification-state", "number")
    expect(page.locator("#phone-input")).to_be_visible()
    # The visitor acts: the session (a CSRF-protected POST over HTTPS), then the WebSocket and
    # the server's greeting.
    page.locator("#phone-input").click()
    expect(html).to_have_attribute("data-connection", "open")

    # WhiteNoise served the collected, hashed file, cacheable for good.
    [script] = [r for r in scripts if "/static/verification/verify." in r.url]
    assert script.status == 200
    assert script.url != f"{deployed_site}/static/verification/verify.js"
    assert "immutable" in script.headers["cache-control"]
    # Its modules are imported by their hashed names too, so one release's modules load together.
    imports = re.findall(r'from "\./([^"]+)"', script.text())
    assert imports, script.text()[:300]
    assert all(re.fullmatch(r"[a-z_]+\.[0-9a-f]{12}\.js", name) for name in imports), imports
    module_urls = [r.url for r in scripts if "/static/verification/" in r.url]
    assert f"{deployed_site}/static/verification/verify_state.js" not in module_urls
    # The cookies are marked Secure, as in production.
    cookies = {cookie["name"]: cookie for cookie in context.cookies()}
    assert cookies["sessionid"]["secure"]
    assert cookies["csrftoken"]["secure"]
    assert missing == []
    assert errors == []
    context.close()
