"""One daphne on the site's embedded defaults (SQLite, DEBUG on), for the abuse benchmarks."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def embedded_site(root: Path, **extra_env: str) -> Iterator[tuple[int, int]]:
    """Migrate a fresh database and serve ``root``'s site with daphne; yields (port, pid)."""
    port = free_port()
    with tempfile.TemporaryDirectory() as var:
        env = {
            **os.environ,
            "DJANGO_SETTINGS_MODULE": "passportsite.settings",
            "ENV_FILE": os.devnull,
            "DEBUG": "1",
            "ALLOWED_HOSTS": "127.0.0.1",
            "DATABASE_URL": f"sqlite:///{var}/db.sqlite3",
            "SANDBOX_STATE_FILE": f"{var}/sandbox.json",
            "PYTHONPATH": str(root),
            **extra_env,
        }
        manage = [sys.executable, str(root / "manage.py")]
        subprocess.run([*manage, "migrate", "-v0"], cwd=root, env=env, check=True)
        server = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
             "passportsite.asgi:application"],
            cwd=root, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    socket.create_connection(("127.0.0.1", port), timeout=1).close()
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        raise
                    time.sleep(0.2)
            yield port, server.pid
        finally:
            server.terminate()
            server.wait(timeout=20)
