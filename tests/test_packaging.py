"""The app as a host project gets it: the wheel built from this repository, installed into a
fresh virtualenv, in a ``django-admin startproject`` set up as the README says, served by daphne.

Nothing of the repository is importable there: no editable install, ``PYTHONPATH`` unset, every
command run from a temporary directory. Every page of the app is rendered through the server by a
signed-in superuser, and a whole verification runs over a real WebSocket against the embedded
sandbox.

Slow (building the sdist and the wheel, a ``pip install`` of the wheel and its dependencies from
PyPI, a server process: about 40 seconds with pip's cache warm). Select it with ``-m packaging``,
leave it out with ``-m "not packaging"``.
"""

from __future__ import annotations

import asyncio
import gettext
import http.cookiejar
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import websockets

pytestmark = [pytest.mark.packaging, pytest.mark.timeout(600)]

REPOSITORY = Path(__file__).resolve().parent.parent

# Files of the app that the wheel leaves out on purpose, each with the reason. None today: the
# wheel carries every module, template, static file, migration and catalog (.po and .mo).
NOT_IN_WHEEL: dict[str, str] = {}

VISITOR_PHONE = "+9996621234"  # the sandbox sends it 22222
SENDER_PHONE = "+9996638001"  # code 33333; +99966X8YYY numbers have a two-step password
SENDER_PASSWORD = "sandbox-password"
ADMIN_USER = "host-admin"
ADMIN_PASSWORD = "host-admin-password-1"


def clean_env(**extra: str) -> dict[str, str]:
    """This process's environment without anything that would reach back into the repository."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    for key in ("DJANGO_SETTINGS_MODULE", "VIRTUAL_ENV"):
        env.pop(key, None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return {**env, **extra}


def run(
    command: list[str], *, cwd: Path, timeout: float = 300, **env: str
) -> subprocess.CompletedProcess:
    result = subprocess.run(
        command, cwd=cwd, env=clean_env(**env), capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))} failed ({result.returncode}):\n"
        f"{result.stdout}\n{result.stderr}"
    )
    return result


def repository_files() -> list[str]:
    """What a commit of this working tree holds: tracked files and new ones git does not ignore."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPOSITORY,
        capture_output=True,
        check=True,
    ).stdout.decode()
    return sorted(name for name in listed.split("\0") if name and (REPOSITORY / name).is_file())


def readme_section() -> str:
    readme = (REPOSITORY / "README.md").read_text()
    start = readme.index("## Add it to your project")
    return readme[start : readme.index("\n## ", start)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Distributions:
    wheel: Path
    sdist: Path


@pytest.fixture(scope="module")
def dists(tmp_path_factory: pytest.TempPathFactory) -> Distributions:
    # The working tree is shared and setuptools writes build/ and *.egg-info beside
    # pyproject.toml, so the build runs on a copy of the files a commit would hold.
    root = tmp_path_factory.mktemp("build")
    source = root / "source"
    for name in repository_files():
        (source / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPOSITORY / name, source / name)
    out = root / "dist"
    # Neither --wheel nor --sdist: build makes the sdist, then the wheel from the unpacked sdist,
    # so a file the sdist misses is missing from the wheel as well.
    run([sys.executable, "-m", "build", "--outdir", str(out), str(source)], cwd=root)
    wheels, sdists = list(out.glob("*.whl")), list(out.glob("*.tar.gz"))
    assert len(wheels) == 1 and len(sdists) == 1, list(out.iterdir())
    return Distributions(wheel=wheels[0], sdist=sdists[0])


def test_twine_accepts_the_wheel_and_the_sdist(dists: Distributions) -> None:
    result = run(
        [sys.executable, "-m", "twine", "check", "--strict", str(dists.wheel), str(dists.sdist)],
        cwd=dists.wheel.parent,
    )
    assert result.stdout.count("PASSED") == 2, result.stdout


def test_wheel_metadata_names_the_supported_versions(dists: Distributions) -> None:
    with zipfile.ZipFile(dists.wheel) as wheel:
        (name,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
        metadata = wheel.read(name).decode()
    assert "Requires-Python: >=3.11" in metadata
    assert "License-Expression: MIT" in metadata
    for classifier in [
        "Framework :: Django :: 5.1",
        "Framework :: Django :: 5.2",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
    ]:
        assert f"Classifier: {classifier}\n" in metadata


def test_wheel_holds_every_file_of_the_app_and_nothing_else(dists: Distributions) -> None:
    with zipfile.ZipFile(dists.wheel) as wheel:
        names = [name for name in wheel.namelist() if not name.endswith("/")]
    in_wheel = {name for name in names if name.startswith("verification/")}
    app_files = {name for name in repository_files() if name.startswith("verification/")}
    assert sorted(app_files - in_wheel - set(NOT_IN_WHEEL)) == []
    assert sorted(in_wheel - app_files) == []  # nothing the repository does not hold
    assert sorted(in_wheel & set(NOT_IN_WHEEL)) == []
    # The admin templates, whose absence broke every admin page of the app in host projects.
    assert "verification/templates/admin/verification/senderaccount/connect.html" in in_wheel
    others = {name.split("/")[0] for name in names} - {"verification"}
    assert [name for name in others if not name.endswith(".dist-info")] == []


def test_sdist_holds_the_app_its_docs_and_the_changelog(dists: Distributions) -> None:
    with tarfile.open(dists.sdist) as sdist:
        names = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    app_files = {name for name in repository_files() if name.startswith("verification/")}
    assert sorted(app_files - names) == []
    docs = {name for name in repository_files() if name.startswith("docs/")}
    expected = {"README.md", "CHANGELOG.md", "pyproject.toml", "MANIFEST.in", *docs}
    assert sorted(expected - names) == []
    assert [name for name in names if name.startswith(("passportsite/", "tests/"))] == []


def test_compiled_catalogs_match_their_sources(dists: Distributions, tmp_path: Path) -> None:
    """The .mo files are committed, not built: each must say what its .po says."""
    msgfmt = shutil.which("msgfmt")
    if msgfmt is None:
        pytest.skip("msgfmt (gettext) is not installed; .ci/run installs it")
    with zipfile.ZipFile(dists.wheel) as wheel:
        sources = [name for name in wheel.namelist() if name.endswith(".po")]
        assert sources
        for source in sources:
            po = tmp_path / "django.po"
            po.write_bytes(wheel.read(source))
            run([msgfmt, "--check", "-o", str(tmp_path / "django.mo"), str(po)], cwd=tmp_path)
            with (tmp_path / "django.mo").open("rb") as compiled:
                expected = gettext.GNUTranslations(compiled)._catalog  # type: ignore[attr-defined]
            with wheel.open(source.removesuffix(".po") + ".mo") as shipped:
                actual = gettext.GNUTranslations(shipped)._catalog  # type: ignore[attr-defined]
            assert actual == expected, f"{source} is newer than its .mo: run compilemessages"


@dataclass
class Host:
    venv: Path
    project: Path

    @property
    def python(self) -> str:
        return str(self.venv / "bin" / "python")

    def manage(self, *args: str, **env: str) -> subprocess.CompletedProcess:
        return run([self.python, "manage.py", *args], cwd=self.project, **env)


def follow_the_readme(project: Path) -> None:
    """The README's "Add it to your project" steps, applied to a fresh startproject."""
    section = readme_section()
    for step in [
        'INSTALLED_APPS = ["daphne", ..., "channels", "verification"]',
        'ASGI_APPLICATION = "mysite.asgi.application"',
        'CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}',
        '{"EMBEDDED_SANDBOX": True}',
        'path("verify/", include("verification.urls"))',
    ]:
        assert step in section, f"the README no longer says {step}; update this test"
    settings = project / "host" / "settings.py"
    settings.write_text(
        settings.read_text()
        + "\n"
        + 'INSTALLED_APPS = ["daphne", *INSTALLED_APPS, "channels", "verification"]\n'
        + 'ASGI_APPLICATION = "host.asgi.application"\n'
        + 'CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}\n'
        + 'VERIFICATION = {"EMBEDDED_SANDBOX": True}\n'
    )
    urls = project / "host" / "urls.py"
    source = urls.read_text().replace(
        "from django.urls import path", "from django.urls import include, path"
    )
    assert "include, path" in source, source
    urls.write_text(source + '\nurlpatterns += [path("verify/", include("verification.urls"))]\n')
    # asgi.py is the README's, word for word.
    (asgi,) = [
        block
        for block in re.findall(r"```python\n(.*?)```", section, re.DOTALL)
        if block.startswith("# asgi.py\n")
    ]
    (project / "host" / "asgi.py").write_text(asgi.replace("mysite", "host"))


@pytest.fixture(scope="module")
def host(dists: Distributions, tmp_path_factory: pytest.TempPathFactory) -> Host:
    root = tmp_path_factory.mktemp("host")
    venv = root / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=root)
    run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", str(dists.wheel)],
        cwd=root,
    )
    project = root / "project"
    project.mkdir()
    run([str(venv / "bin" / "django-admin"), "startproject", "host", str(project)], cwd=root)
    follow_the_readme(project)
    host = Host(venv=venv, project=project)
    host.manage("migrate", "--no-input")
    host.manage(
        "createsuperuser",
        "--no-input",
        "--username",
        ADMIN_USER,
        "--email",
        "admin@example.com",
        DJANGO_SUPERUSER_PASSWORD=ADMIN_PASSWORD,
    )
    return host


def test_the_app_comes_from_the_wheel(host: Host) -> None:
    where = run(
        [host.python, "-c", "import verification.sandbox; print(verification.__file__)"],
        cwd=host.project,
    ).stdout.strip()
    assert Path(where).is_relative_to(host.venv), where
    assert not Path(where).is_relative_to(REPOSITORY), where


def test_host_project_checks_and_migrates(host: Host) -> None:
    check = host.manage("check")
    assert "System check identified no issues" in check.stdout, check.stdout + check.stderr
    assert "No migrations to apply." in host.manage("migrate", "--no-input").stdout
    applied = host.manage("showmigrations", "verification").stdout
    assert "[X] 0001_initial" in applied, applied


def start_runserver(host: Host, port: int) -> tuple[subprocess.Popen, Path, bool]:
    """The server process, its log, and whether it answered within a minute."""
    log = host.project / f"runserver-{port}.log"
    with log.open("w") as output:
        process = subprocess.Popen(
            [host.python, "manage.py", "runserver", "--noreload", f"127.0.0.1:{port}"],
            cwd=host.project,
            env=clean_env(PYTHONUNBUFFERED="1"),
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline = time.monotonic() + 60
    while process.poll() is None and time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/verify/", timeout=5).close()
        except OSError:
            time.sleep(0.2)
        else:
            return process, log, True
    return process, log, False


@pytest.fixture(scope="module")
def server(host: Host) -> Iterator[str]:
    """``manage.py runserver`` (daphne's, as the README sets it up) on a free port."""
    for _attempt in range(3):
        port = free_port()
        process, log, answered = start_runserver(host, port)
        if answered or "already in use" not in log.read_text():
            break  # retry only when another process took the port in the meantime
    try:
        assert answered, f"runserver did not answer:\n{log.read_text()}"
        assert "Starting ASGI/Daphne" in log.read_text(), log.read_text()
        yield f"http://127.0.0.1:{port}"
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Browser:
    """urllib with a cookie jar: sessions, CSRF tokens and redirects as a browser has them."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.cookies = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.cookies))

    def cookie(self, name: str) -> str:
        return next(cookie.value for cookie in self.cookies if cookie.name == name)

    def open(self, path: str, data: dict[str, str] | None = None) -> tuple[str, str]:
        """The final URL's path and the page, after redirects; anything but 200 fails."""
        body = None
        if data is not None:
            body = urllib.parse.urlencode(
                {"csrfmiddlewaretoken": self.cookie("csrftoken"), **data}
            ).encode()
        try:
            with self.opener.open(self.base + path, body, timeout=60) as response:
                assert response.status == 200, (path, response.status)
                return urllib.parse.urlsplit(response.url).path, response.read().decode()
        except urllib.error.HTTPError as error:
            pytest.fail(f"{path}: HTTP {error.code}\n{error.read().decode()[:3000]}")

    def get(self, path: str) -> str:
        return self.open(path)[1]


@pytest.fixture(scope="module")
def admin(server: str) -> Browser:
    browser = Browser(server)
    browser.get("/admin/login/")
    landed, page = browser.open(
        "/admin/login/?next=/admin/",
        {"username": ADMIN_USER, "password": ADMIN_PASSWORD, "next": "/admin/"},
    )
    assert landed == "/admin/", page
    assert "Phone verification" in page  # the app's section of the admin index
    return browser


async def _receive(socket: websockets.ClientConnection, wanted: str, frames: list[dict]) -> dict:
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), 30))
        frames.append(message)
        assert message["type"] != "error", frames
        if message["type"] == wanted:
            return message


async def _verify_over_websocket(server: str, cookie: str) -> list[dict]:
    url = server.replace("http://", "ws://") + "/ws/verification/"
    frames: list[dict] = []
    async with websockets.connect(
        url, origin=server, additional_headers={"Cookie": cookie}, open_timeout=30
    ) as socket:
        await _receive(socket, "state", frames)
        await socket.send(json.dumps({"type": "send_code", "phone_number": VISITOR_PHONE}))
        await _receive(socket, "code_sent", frames)
        await socket.send(json.dumps({"type": "verify", "code": "22222"}))
        await _receive(socket, "verified", frames)
    return frames


@pytest.fixture(scope="module")
def visitor_frames(server: str) -> list[dict]:
    """A visitor loads the page and verifies VISITOR_PHONE over the WebSocket."""
    visitor = Browser(server)
    visitor.get("/verify/")
    # The page writes no session until the visitor acts; then it asks the app for one.
    visitor.open("/verify/session/", {})
    cookie = f"sessionid={visitor.cookie('sessionid')}"
    return asyncio.run(_verify_over_websocket(server, cookie))


def test_visitor_page_and_its_static_files(server: str) -> None:
    visitor = Browser(server)
    page = visitor.get("/verify/")
    assert 'id="phone-input"' in page
    assets = re.findall(r'(?:src|href)="(/static/verification/[^"]+)"', page)
    assert {"/static/verification/verify.js", "/static/verification/verify.css"} <= set(assets)
    for asset in assets:
        assert visitor.get(asset)


def test_a_visitor_verifies_a_number_over_the_websocket(visitor_frames: list[dict]) -> None:
    assert visitor_frames[0] == {"type": "state", "verification": None}
    code_sent = next(frame for frame in visitor_frames if frame["type"] == "code_sent")
    assert code_sent["verification"]["code"] == {"type": "sms", "length": 5}
    verified = visitor_frames[-1]
    assert verified["type"] == "verified"
    assert verified["verification"]["status"] == "verified"
    assert verified["verification"]["phone_number"] == "+999 66 2 1234"


def test_sandbox_inbox_lists_the_codes_it_sent(server: str, visitor_frames: list[dict]) -> None:
    visitor = Browser(server)
    assert 'id="sandbox-inbox"' in visitor.get("/verify/sandbox/")
    codes = json.loads(visitor.get("/verify/sandbox/codes.json"))["codes"]
    assert [c["code"] for c in codes if c["phone"] == VISITOR_PHONE] == ["22222"], codes


def test_admin_verification_pages(admin: Browser, visitor_frames: list[dict]) -> None:
    listing = admin.get("/admin/verification/phoneverification/")
    assert "/admin/verification/phoneverification/summary/" in listing  # the app's template
    assert VISITOR_PHONE in listing

    verification_id = visitor_frames[-1]["verification"]["id"]
    change = admin.get(f"/admin/verification/phoneverification/{verification_id}/change/")
    assert VISITOR_PHONE in change
    assert "Timeline" in change  # the event inline
    assert "Code submitted" in change

    summary = admin.get("/admin/verification/phoneverification/summary/?days=1")
    assert 'id="summary-totals"' in summary
    assert re.search(r"Conversion</th><td>\d+ %</td>", summary), summary


def test_admin_connects_a_sender_account(admin: Browser) -> None:
    listing = admin.get("/admin/verification/senderaccount/")
    assert "/admin/verification/senderaccount/connect/" in listing  # the app's template

    connect = "/admin/verification/senderaccount/connect/"
    page = admin.get(connect)
    assert "Phone number of the Telegram account" in page
    landed, page = admin.open(connect, {"phone_number": SENDER_PHONE})
    assert landed == connect
    assert f"Telegram sent a sign-in code to {SENDER_PHONE}" in page
    landed, page = admin.open(connect, {"code": "33333"})
    assert landed == connect
    assert f"{SENDER_PHONE} has two-step verification" in page
    landed, page = admin.open(connect, {"password": SENDER_PASSWORD})
    assert landed == "/admin/verification/senderaccount/"
    assert "The sender account is connected." in page
    assert SENDER_PHONE in page

    found = admin.get("/admin/verification/senderaccount/?q=" + urllib.parse.quote(SENDER_PHONE))
    (account,) = set(re.findall(r'href="(/admin/verification/senderaccount/\d+/change/)', found))
    change = admin.get(account)
    assert SENDER_PHONE in change
    assert 'name="label"' in change  # the one field staff may edit
