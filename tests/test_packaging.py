"""The app as a host project gets it: a built wheel, installed into a fresh virtualenv.

Slow (a wheel build and a ``pip install``; pip's cache keeps it to well under a minute once
warm) and needs PyPI for the dependencies.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest

REPOSITORY = Path(__file__).resolve().parent.parent

# The working tree is shared, so the build runs on a copy: setuptools writes build/ and
# *.egg-info next to pyproject.toml.
NOT_SOURCES = shutil.ignore_patterns(
    ".git",
    ".venv",
    "__pycache__",
    "*.pyc",
    ".pytest_cache",
    ".ruff_cache",
    "build",
    "dist",
    "*.egg-info",
    "var",
    "*.sqlite3",
    "node_modules",
)

HOST_SETTINGS = """
    from pathlib import Path

    BASE_DIR = Path(__file__).resolve().parent.parent
    SECRET_KEY = "host-project-test-key"
    DEBUG = True
    ALLOWED_HOSTS = ["localhost", "127.0.0.1"]

    INSTALLED_APPS = [
        "django.contrib.admin",
        "django.contrib.auth",
        "django.contrib.contenttypes",
        "django.contrib.sessions",
        "django.contrib.messages",
        "django.contrib.staticfiles",
        "channels",
        "verification",
    ]
    MIDDLEWARE = [
        "django.middleware.security.SecurityMiddleware",
        "django.contrib.sessions.middleware.SessionMiddleware",
        "django.middleware.common.CommonMiddleware",
        "django.middleware.csrf.CsrfViewMiddleware",
        "django.contrib.auth.middleware.AuthenticationMiddleware",
        "django.contrib.messages.middleware.MessageMiddleware",
    ]
    TEMPLATES = [
        {
            "BACKEND": "django.template.backends.django.DjangoTemplates",
            "DIRS": [],
            "APP_DIRS": True,
            "OPTIONS": {
                "context_processors": [
                    "django.template.context_processors.request",
                    "django.contrib.auth.context_processors.auth",
                    "django.contrib.messages.context_processors.messages",
                ],
            },
        },
    ]
    ROOT_URLCONF = "host.urls"
    ASGI_APPLICATION = "host.asgi.application"
    DATABASES = {
        "default": {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}
    }
    CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
    STATIC_URL = "static/"
    USE_TZ = True
    DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

    VERIFICATION = {"EMBEDDED_SANDBOX": True}
"""

HOST_URLS = """
    from django.contrib import admin
    from django.urls import include, path

    urlpatterns = [
        path("admin/", admin.site.urls),
        path("verify/", include("verification.urls")),
    ]
"""

HOST_ASGI = """
    import os

    from django.core.asgi import get_asgi_application

    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "host.settings")
    django_application = get_asgi_application()

    from channels.auth import AuthMiddlewareStack  # noqa: E402
    from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
    from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

    import verification.routing  # noqa: E402

    application = ProtocolTypeRouter(
        {
            "http": django_application,
            "websocket": AllowedHostsOriginValidator(
                AuthMiddlewareStack(URLRouter(verification.routing.websocket_urlpatterns))
            ),
        }
    )
"""

HOST_MANAGE = """
    import os
    import sys

    if __name__ == "__main__":
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "host.settings")
        from django.core.management import execute_from_command_line

        execute_from_command_line(sys.argv)
"""


def run(command: list[str], *, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {key: value for key, value in os.environ.items() if not key.startswith("PYTHON")}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    env.pop("VIRTUAL_ENV", None)
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    result = subprocess.run(
        command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
    assert result.returncode == 0, (
        f"{' '.join(map(str, command))} failed ({result.returncode}):\n"
        f"{result.stdout}\n{result.stderr}"
    )
    return result


def write(path: Path, source: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(textwrap.dedent(source).lstrip())


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("build")
    source = root / "source"
    shutil.copytree(REPOSITORY, source, ignore=NOT_SOURCES)
    out = root / "dist"
    run([sys.executable, "-m", "build", "--wheel", "--outdir", str(out), str(source)], cwd=root)
    wheels = list(out.glob("*.whl"))
    assert len(wheels) == 1, wheels
    return wheels[0]


@pytest.mark.timeout(360)
def test_wheel_ships_the_app_and_nothing_of_the_site(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = [
        "verification/templates/verification/verify.html",
        "verification/templates/verification/base.html",
        "verification/static/verification/verify.js",
        "verification/migrations/0001_initial.py",
        "verification/locale/ru/LC_MESSAGES/django.mo",
        "verification/sandbox/__init__.py",
        "verification/sandbox/server.py",
        "verification/management/commands/telegram_worker.py",
        "verification/management/commands/telegram_login.py",
    ]
    assert [name for name in expected if name not in names] == []
    assert not [name for name in names if name.startswith("passportsite")]
    assert not [name for name in names if name.startswith("tests/")]


@pytest.mark.timeout(360)
def test_wheel_installs_into_a_fresh_host_project(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)], cwd=tmp_path)
    python = str(venv / "bin" / "python")
    run([python, "-m", "pip", "install", "--quiet", str(wheel)], cwd=tmp_path)

    project = tmp_path / "project"
    write(project / "manage.py", HOST_MANAGE)
    write(project / "host" / "__init__.py", "")
    write(project / "host" / "settings.py", HOST_SETTINGS)
    write(project / "host" / "urls.py", HOST_URLS)
    write(project / "host" / "asgi.py", HOST_ASGI)

    # The app is imported from the virtualenv, not from this checkout.
    where = run(
        [python, "-c", "import verification, verification.sandbox; print(verification.__file__)"],
        cwd=project,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), where
    assert not Path(where).is_relative_to(REPOSITORY), where

    migrate = run([python, "manage.py", "migrate", "--no-input"], cwd=project)
    assert "verification.0001_initial... OK" in migrate.stdout, migrate.stdout

    check = run([python, "manage.py", "check"], cwd=project)
    assert "System check identified no issues" in check.stdout, check.stdout + check.stderr

    asgi = run(
        [
            python,
            "-c",
            "import host.asgi; print(type(host.asgi.application).__name__)",
        ],
        cwd=project,
    )
    assert asgi.stdout.strip() == "ProtocolTypeRouter"
