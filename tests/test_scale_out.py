"""The scale-out configuration: PostgreSQL, Redis, two web processes and two Telegram worker
processes, all separate, with the sandbox as Telegram. A killed worker's sender account is taken
over by the other one once its lease runs out, and verification goes on."""

from __future__ import annotations

import asyncio
import json
import secrets
import signal
import socket
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import redis as redis_client
import websockets

from verification.sandbox import SandboxThread

pytestmark = pytest.mark.scale_out

ROOT = Path(__file__).resolve().parent.parent
REDIS_DB = 11


class Site:
    def __init__(self, env: dict[str, str], log_dir: Path) -> None:
        self.env = env
        self.log_dir = log_dir
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    def manage(self, *args: str, stdin: str = "") -> str:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=self.env,
            input=stdin.encode(),
            capture_output=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr.decode()
        return result.stdout.decode()

    def start(self, name: str, *command: str) -> subprocess.Popen[bytes]:
        log = open(self.log_dir / f"{name}.log", "wb")  # noqa: SIM115 (closed with the process)
        process = subprocess.Popen(command, cwd=ROOT, env=self.env, stdout=log, stderr=log)
        self.processes[name] = process
        return process

    def logs(self) -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-3000:]}"
            for path in sorted(self.log_dir.glob("*.log"))
        )

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in self.processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


def query(dsn: str, sql: str) -> list[tuple]:
    with psycopg.connect(dsn) as connection:
        return connection.execute(sql).fetchall()


@pytest.fixture
def site(tmp_path, postgres, redis, site_environment, free_port):
    name = f"passportsite_scale_{secrets.token_hex(4)}"
    with psycopg.connect(f"{postgres}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    redis_db = redis_client.Redis(db=REDIS_DB)
    redis_db.flushdb()
    sandbox = SandboxThread(resend_timeout=1, code_lifetime=120).start()
    key = tmp_path / "sandbox.pem"
    key.write_text(sandbox.public_key_pem)
    port = free_port()
    env = site_environment(
        DATABASE_URL=f"{postgres}/{name}",
        REDIS_URL=f"{redis}/{REDIS_DB}",
        TELEGRAM_SERVER=sandbox.address,
        TELEGRAM_SERVER_PUBLIC_KEY=str(key),
        TELEGRAM_API_ID="1",
        TELEGRAM_API_HASH="sandbox",
        EMBEDDED_SANDBOX="0",
        EMBEDDED_WORKER="0",
        VERIFICATION_LEASE_SECONDS="3",
    )
    site = Site(env, tmp_path)
    site.dsn = f"{postgres}/{name}"
    site.port = port
    try:
        site.manage("migrate", "--noinput")
        site.manage("telegram_login", "--phone", "+9996617001", stdin="11111\n")
        yield site
    except BaseException:
        print(site.logs())
        raise
    finally:
        site.stop()
        sandbox.stop()
        redis_db.flushdb()
        with psycopg.connect(f"{postgres}/postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def receive_until(ws, kind: str, timeout: float = 15.0) -> dict:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == kind:
                return frame


def lease_owner(site: Site) -> str:
    rows = query(site.dsn, "SELECT lease_owner FROM verification_senderaccount")
    return rows[0][0] if rows else ""


def test_web_and_workers_in_separate_processes(site, free_port, wait_until, page_session):
    python = sys.executable
    first = site.start("worker-1", python, "manage.py", "telegram_worker")
    owner_1 = wait_until(lambda: lease_owner(site), what="worker 1 to lease the account")
    site.start("worker-2", python, "manage.py", "telegram_worker")
    other_port = free_port()
    for name, port in (("web-1", site.port), ("web-2", other_port)):
        site.start(
            name, python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
            "passportsite.asgi:application",
        )  # fmt: skip

    def web_up(port: int) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return True
        except OSError:
            return False

    wait_until(lambda: web_up(site.port) and web_up(other_port), what="the web processes")
    # The page gives the browser its session; both tabs carry that cookie.
    cookie = page_session(site.port)

    def tab(port: int) -> websockets.asyncio.client.connect:
        return websockets.connect(
            f"ws://127.0.0.1:{port}/ws/verification/",
            origin=f"http://127.0.0.1:{port}",
            additional_headers={"Cookie": cookie},
        )

    async def journey() -> None:
        async with tab(site.port) as ws, tab(other_port) as other:
            assert json.loads(await ws.recv()) == {"type": "state", "verification": None}
            assert json.loads(await other.recv()) == {"type": "state", "verification": None}
            await ws.send(json.dumps({"type": "send_code", "phone_number": "+9996621234"}))
            sent = await receive_until(ws, "code_sent")
            assert sent["verification"]["code"] == {"type": "sms", "length": 5}
            # The tab served by the other web process hears it through Redis.
            seen = await receive_until(other, "code_sent")
            assert seen["verification"]["id"] == sent["verification"]["id"]

            # Worker 1 dies without releasing its lease; worker 2 takes the account over.
            first.kill()
            first.wait()
            await asyncio.to_thread(
                wait_until,
                lambda: lease_owner(site) not in ("", owner_1),
                what="worker 2 to take the lease over",
            )
            # The code was asked for with the same auth key, so it still verifies.
            await ws.send(json.dumps({"type": "verify", "code": "22222"}))
            verified = await receive_until(ws, "verified")
            assert verified["verification"]["status"] == "verified"
            assert (await receive_until(other, "verified"))["verification"] == verified[
                "verification"
            ]

            await ws.send(json.dumps({"type": "send_code", "phone_number": "+9996631234"}))
            await receive_until(ws, "code_sent")
            await ws.send(json.dumps({"type": "verify", "code": "33333"}))
            await receive_until(ws, "verified")

    try:
        asyncio.run(journey())
    except BaseException:
        print(site.logs())
        raise
    rows = query(site.dsn, "SELECT status FROM verification_phoneverification ORDER BY created_at")
    assert rows == [("verified",), ("verified",)]


def test_a_terminated_worker_hands_its_accounts_over_at_once(site, wait_until):
    """SIGTERM releases the leases: the other worker takes over without waiting them out."""
    python = sys.executable
    # Worker 1 takes 600 s leases; worker 2 looks for free accounts every second.
    site.env["VERIFICATION_LEASE_SECONDS"] = "600"
    first = site.start("worker-1", python, "manage.py", "telegram_worker")
    owner_1 = wait_until(lambda: lease_owner(site), what="worker 1 to lease the account")
    site.env["VERIFICATION_LEASE_SECONDS"] = "3"
    site.start("worker-2", python, "manage.py", "telegram_worker")
    wait_until(
        lambda: "ready" in (site.log_dir / "worker-2.log").read_text(),
        what="worker 2 to start",
    )
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=15) == 0
    assert "Telegram worker stopped." in (site.log_dir / "worker-1.log").read_text()
    # Worker 1's lease had ~600 s to run: only a released lease changes hands this fast.
    wait_until(lambda: lease_owner(site) not in ("", owner_1), what="worker 2 to take over")
