"""Races, run the way visitors cause them: real sockets, truly at once, against a real server.

Each test starts daphne on SQLite and on PostgreSQL (embedded worker, the real Telethon gateway,
a sandbox as Telegram) and fires requests from several tabs of one browser session in the same
instant, over and over.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
import websockets

from verification.sandbox import SandboxThread

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration


class Server:
    """daphne serving passportsite on one database, with its embedded Telegram worker."""

    def __init__(self, env: dict[str, str], log: Path, sql: str, port: int) -> None:
        self.env, self.log_path, self.sql = env, log, sql
        self.port = port
        self.process: subprocess.Popen[bytes] | None = None

    def manage(self, *args: str, stdin: str = "") -> None:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT, env=self.env, input=stdin.encode(), capture_output=True, timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr.decode()

    def start(self) -> None:
        log = open(self.log_path, "wb")  # noqa: SIM115 (closed with the process)
        self.process = subprocess.Popen(
            [sys.executable, "-m", "daphne", "-b", "127.0.0.1", "-p", str(self.port),
             "passportsite.asgi:application"],
            cwd=ROOT, env=self.env, stdout=log, stderr=log,
        )  # fmt: skip
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{self.port}/", timeout=5)
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"daphne did not start:\n{self.logs()}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]

    def session(self) -> str:
        return self.page_session(self.port)

    def tab(self, cookie: str) -> websockets.asyncio.client.connect:
        return websockets.connect(
            f"ws://127.0.0.1:{self.port}/ws/verification/",
            origin=f"http://127.0.0.1:{self.port}",
            additional_headers={"Cookie": cookie},
        )

    def rows(self, query: str) -> list[tuple]:
        if self.sql.startswith("postgres"):
            with psycopg.connect(self.sql) as connection:
                return connection.execute(query).fetchall()
        import sqlite3

        with sqlite3.connect(self.sql) as connection:
            return connection.execute(query).fetchall()


@pytest.fixture(params=["sqlite", "postgres"])
def server(
    request,
    telegram_sandbox: SandboxThread,
    tmp_path: Path,
    site_environment,
    free_port,
    page_session,
) -> Iterator[Server]:
    name = f"passportsite_race_{secrets.token_hex(4)}"
    postgres = request.getfixturevalue("postgres") if request.param == "postgres" else ""
    if postgres:
        with psycopg.connect(f"{postgres}/postgres", autocommit=True) as connection:
            connection.execute(f'CREATE DATABASE "{name}"')
        url = sql = f"{postgres}/{name}"
    else:
        sql = str(tmp_path / "race.sqlite3")
        url = f"sqlite:///{sql}"
    key = tmp_path / "sandbox.pem"
    key.write_text(telegram_sandbox.public_key_pem)
    env = site_environment(
        DATABASE_URL=url,
        TELEGRAM_SERVER=telegram_sandbox.address,
        TELEGRAM_SERVER_PUBLIC_KEY=str(key),
        TELEGRAM_API_ID="1",
        TELEGRAM_API_HASH="sandbox",
        EMBEDDED_SANDBOX="0",
        EMBEDDED_WORKER="1",
        VERIFICATION_RATE_LIMITS="off",
    )
    server = Server(env, tmp_path / "daphne.log", sql, free_port())
    server.page_session = page_session
    try:
        server.manage("migrate", "--noinput")
        phone = f"+99966170{secrets.randbelow(100):02d}"
        server.manage("telegram_login", "--phone", phone, stdin="11111\n")
        server.start()
        yield server
    except BaseException:
        print(server.logs() if server.log_path.exists() else "")
        raise
    finally:
        server.stop()
        if postgres:
            with psycopg.connect(f"{postgres}/postgres", autocommit=True) as connection:
                connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def until(ws, *kinds: str, timeout: float = 20.0) -> dict:
    seen = []
    try:
        async with asyncio.timeout(timeout):
            while True:
                frame = json.loads(await ws.recv())
                seen.append(frame)
                if frame["type"] in kinds:
                    return frame
    except TimeoutError:
        raise AssertionError(f"no {kinds} frame; frames seen: {seen}") from None


def test_two_tabs_sending_at_once_leave_one_active_verification(server: Server) -> None:
    """Each round two tabs send at the same instant: exactly one verification stays active,
    and the code the visitor types verifies that one."""

    def rows(phone: str) -> list[tuple[str, str]]:
        return [
            (str(pk).replace("-", ""), status)
            for pk, status in server.rows(
                "SELECT id, status FROM verification_phoneverification "
                f"WHERE phone_number = '{phone}' ORDER BY created_at"
            )
        ]

    async def rounds() -> None:
        for number in range(5):
            cookie = server.session()
            phone = f"+999662{number:04d}"
            send = json.dumps({"type": "send_code", "phone_number": phone})
            async with server.tab(cookie) as first, server.tab(cookie) as second:
                await first.recv()
                await second.recv()
                await asyncio.gather(first.send(send), second.send(send))
                async with asyncio.timeout(20):
                    while len(recorded := rows(phone)) < 2:
                        await asyncio.sleep(0.05)
                active = [pk for pk, status in recorded if status in ("sending", "code_sent")]
                assert len(active) == 1, recorded
                while True:
                    sent = await until(first, "code_sent")
                    if sent["verification"]["id"].replace("-", "") == active[0]:
                        break
                await first.send(json.dumps({"type": "verify", "code": "22222"}))
                verified = await until(first, "verified")
                assert verified["verification"]["id"] == sent["verification"]["id"]
            assert sorted(status for _, status in rows(phone)) == ["cancelled", "verified"]

    try:
        asyncio.run(rounds())
    except BaseException:
        print(server.logs())
        raise


def test_resend_racing_verify_from_three_tabs(server: Server) -> None:
    """One tab resends while two tabs submit the right code, at once, twelve times: every
    verification ends verified (the resend never swaps the hash under a verify)."""

    async def rounds() -> list[str]:
        outcomes = []
        for number in range(12):
            cookie = server.session()
            async with (
                server.tab(cookie) as one,
                server.tab(cookie) as two,
                server.tab(cookie) as three,
            ):
                for tab in (one, two, three):
                    await tab.recv()
                phone = f"+999663{number:04d}"
                await one.send(json.dumps({"type": "send_code", "phone_number": phone}))
                await until(one, "code_sent")
                await until(one, "resend_available", timeout=5)
                await asyncio.gather(
                    one.send(json.dumps({"type": "resend"})),
                    two.send(json.dumps({"type": "verify", "code": "33333"})),
                    three.send(json.dumps({"type": "verify", "code": "33333"})),
                )
                final = await until(two, "verified", "expired", "error")
                while final["type"] == "error" and final["code"] in (
                    "NO_ACTIVE_VERIFICATION",
                    "RESEND_NOT_AVAILABLE",
                ):
                    final = await until(two, "verified", "expired", "error")
                outcomes.append(final["type"] if final["type"] != "error" else final["code"])
        return outcomes

    try:
        outcomes = asyncio.run(rounds())
    except BaseException:
        print(server.logs())
        raise
    assert outcomes == ["verified"] * 12
