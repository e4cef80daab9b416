"""Browser tests: the real site (daphne, embedded worker and sandbox) driven by Debian's Chromium.

The site runs as a subprocess on its own SQLite file, so these tests never touch pytest-django's
test database. Every page a test opens records JavaScript errors; tests assert there were none.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

PROJECT_DIR = Path(__file__).resolve().parents[2]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTUP_TIMEOUT = 60

failed_key = pytest.StashKey[bool]()

expect.set_options(timeout=15_000)


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> Iterator:
    report = yield
    if report.failed:
        item.stash[failed_key] = True
    return report


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class LiveSite:
    def __init__(self, url: str, log_path: Path, env: dict[str, str] | None = None) -> None:
        self.url = url
        self.log_path = log_path
        self.env = env or {}

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def manage(self, *args: str, stdin: str = "") -> str:
        """Runs ``manage.py *args`` on the site's database and settings; returns its output."""
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=PROJECT_DIR,
            env=self.env,
            input=stdin,
            capture_output=True,
            text=True,
        )
        assert result.returncode == 0, f"manage.py {' '.join(args)}:\n{result.stderr}"
        return result.stdout


def _wait_until_serving(url: str, process: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"The site exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)
    pytest.fail(f"No answer from {url} within {STARTUP_TIMEOUT} s:\n{log_path.read_text()}")


@pytest.fixture(scope="session")
def live_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    """passportsite served by daphne on a free port, with a short sandbox resend timeout."""
    yield from serve_site(tmp_path_factory.mktemp("browser-site"))


@pytest.fixture(scope="session")
def gateway_site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveSite]:
    """The same site sending every code through the Gateway API (``TRANSPORTS=gateway``), to
    its embedded Gateway sandbox."""
    yield from serve_site(tmp_path_factory.mktemp("gateway-site"), TRANSPORTS="gateway")


def serve_site(tmp: Path, **extra_env: str) -> Iterator[LiveSite]:
    """Serve passportsite from ``tmp`` (its database, sandbox state and log) until closed;
    ``extra_env`` adds to or overrides the environment the site reads."""
    port = _free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "passportsite.settings",
        "DATABASE_URL": f"sqlite:///{tmp / 'browser.sqlite3'}",
        "DEBUG": "1",
        "SANDBOX_RESEND_TIMEOUT": "3",
        "SANDBOX_STATE_FILE": str(tmp / "sandbox-state.json"),
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        # Every test sends from 127.0.0.1: the per-IP limit would otherwise cap the suite's size.
        "VERIFICATION_RATE_LIMITS": "session=10/600,phone=5/3600,ip=1000/3600",
        # The same reason: the challenge and the new-session limit are per address
        # (test_challenge.py serves a site with the challenge on).
        "VERIFICATION_CHALLENGE_AFTER": "off",
        "VERIFICATION_NEW_SESSIONS_LIMIT": "off",
        "PYTHONUNBUFFERED": "1",
        # Where the embedded Gateway sandbox posts its delivery reports.
        "SITE_URL": f"http://127.0.0.1:{port}",
        **extra_env,
    }
    log_path = tmp / "site.log"
    with log_path.open("wb") as log:
        subprocess.run(
            [sys.executable, "manage.py", "migrate", "--no-input", "-v0"],
            cwd=PROJECT_DIR,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            check=True,
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
    try:
        _wait_until_serving(url + "/", process, log_path)
        yield LiveSite(url, log_path, env)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


# Module scope: Playwright's sync API keeps an event loop running on the main thread while it is
# open, which would break every asyncio test collected after the browser tests.
@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(
            f"{CHROMIUM} is missing: `apt-get install -y chromium`"
            " (or deselect these tests with -m 'not browser')"
        )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def js_errors() -> list[str]:
    """JavaScript errors (uncaught exceptions and console errors) of every page a test opened."""
    return []


@pytest.fixture
def context(
    request: pytest.FixtureRequest, browser: Browser, live_site: LiveSite
) -> Iterator[BrowserContext]:
    """A fresh browser profile (so a fresh Django session) per test."""
    context = browser.new_context(base_url=live_site.url, viewport={"width": 1024, "height": 768})
    yield context
    context.close()
    if request.node.stash.get(failed_key, False):
        print(f"---- site log ({live_site.log_path}) ----")
        print(live_site.log()[-20_000:])


@pytest.fixture
def new_page(context: BrowserContext, js_errors: list[str]) -> Callable[..., Page]:
    """Opens the verification page in the test's browser context, recording JavaScript errors."""

    def open_page(path: str = "/") -> Page:
        page = context.new_page()
        page.on("pageerror", lambda error: js_errors.append(f"pageerror: {error}"))
        page.on(
            "console",
            lambda message: (
                js_errors.append(f"console.error: {message.text} {message.location}")
                if message.type == "error"
                else None
            ),
        )
        page.goto(path)
        return page

    return open_page


# axe-core, installed by `npm ci` (package.json); `make test` runs it before pytest.
AXE_SCRIPT = PROJECT_DIR / "node_modules" / "axe-core" / "axe.min.js"
# WCAG 2.0, 2.1 and 2.2 at levels A and AA, and Deque's best practices.
AXE_TAGS = ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "wcag22aa", "best-practice"]


def axe_violations(page: Page) -> list[dict]:
    """axe's violations on the page as it is now (injecting axe-core first if needed)."""
    if not AXE_SCRIPT.exists():
        pytest.fail(f"{AXE_SCRIPT} is missing: run `npm ci` (make test does)")
    if not page.evaluate("typeof window.axe === 'object'"):
        page.add_script_tag(path=AXE_SCRIPT)
    return page.evaluate(
        """async (tags) => {
          const results = await axe.run(document, {
            runOnly: { type: "tag", values: tags },
            resultTypes: ["violations"],
          });
          return results.violations.map((violation) => ({
            id: violation.id,
            impact: violation.impact,
            help: violation.help,
            nodes: violation.nodes.map((node) => ({
              target: node.target.map(String).join(" "),
              html: node.html,
              summary: node.failureSummary,
            })),
          }));
        }""",
        AXE_TAGS,
    )


def axe_report(violations: list[dict]) -> str:
    """One paragraph per violated rule: its id, impact and summary, then each element."""
    lines = []
    for violation in violations:
        lines.append(f"{violation['id']} ({violation['impact']}): {violation['help']}")
        for node in violation["nodes"]:
            summary = " ".join(str(node["summary"] or "").split())
            lines.append(f"  - {node['target']}: {summary}")
            lines.append(f"    {node['html'][:200]}")
    return "\n".join(lines)


class Axe:
    """Runs axe on pages as a test reaches each state, and keeps what it found."""

    def __init__(self) -> None:
        self.found: list[str] = []
        self.runs = 0

    def __call__(self, page: Page, where: str) -> None:
        """Checks ``page`` now; ``where`` names the state in the report."""
        self.runs += 1
        violations = axe_violations(page)
        if violations:
            self.found.append(f"{where} ({page.url}):\n{axe_report(violations)}")

    def assert_clean(self) -> None:
        """Fails with every violation found so far, grouped by state."""
        assert self.runs, "axe never ran"
        if self.found:
            pytest.fail(
                f"axe found violations in {len(self.found)} of {self.runs} states:\n\n"
                + "\n\n".join(self.found),
                pytrace=False,
            )


@pytest.fixture
def axe() -> Axe:
    """``axe(page, "where")`` at each state, then ``axe.assert_clean()``: a readable list of
    the rules axe-core found violated (WCAG 2.x A and AA, best practices), state by state."""
    return Axe()
