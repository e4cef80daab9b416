"""What survives a failure: a dying worker, a failed start, a Redis outage, a slow Telegram, a
connection dropped under a request that was given up."""

from __future__ import annotations

import asyncio
import json
import logging
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import websockets
from channels.layers import InMemoryChannelLayer
from django.db import DatabaseError

from verification import engine, runtime, services
from verification.gateway.fake import FakeGateway
from verification.models import PhoneVerification
from verification.sandbox import SandboxThread
from verification.worker import core
from verification.worker.core import TelegramWorker
from verification.worker.handlers import Handlers

ROOT = Path(__file__).resolve().parent.parent
PHONE = "+9996621234"  # The fake and the sandbox both send it 22222.


@pytest.fixture
def verification_log(caplog: pytest.LogCaptureFixture) -> Iterator[pytest.LogCaptureFixture]:
    # The site's LOGGING keeps "verification" from propagating to caplog's root handler.
    logger = logging.getLogger("verification")
    logger.addHandler(caplog.handler)
    try:
        with caplog.at_level(logging.INFO, logger="verification"):
            yield caplog
    finally:
        logger.removeHandler(caplog.handler)


@pytest.fixture
def ready(fake_settings, make_sender):
    make_sender()
    return fake_settings


async def eventually(predicate, *, timeout: float = 10.0, what: str = "condition") -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline:
        if value := predicate():
            return value
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


async def frames_during(tab, seconds: float) -> list[dict[str, Any]]:
    """Every frame the tab gets in the next ``seconds`` (without timing the socket out)."""
    loop = asyncio.get_running_loop()
    end = loop.time() + seconds
    frames = []
    while loop.time() < end:
        if not await tab.nothing(0.05):
            frames.append(await tab.receive())
    return frames


def port_is_closed(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return False
    except OSError:
        return True


# 1. A worker that dies is replaced --------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
async def test_a_dead_embedded_worker_is_replaced_and_verification_goes_on(
    ready, open_tab, browser_session, verification_log
):
    tab, _ = await open_tab(await browser_session())
    embedded = runtime.current()
    first = embedded.worker
    assert first is not None and first.ready.is_set()

    async def broken_fence() -> None:
        raise RuntimeError("lease fence exploded")

    # A part of the worker fails for good (its lease loop), so the whole worker stops.
    first.leases.fence = broken_fence
    second = await eventually(
        lambda: embedded.worker if embedded.worker is not first else None,
        what="a new worker",
    )
    assert second.ready.is_set()
    assert second.channel and second.channel != first.channel

    await tab.send(type="send_code", phone_number=PHONE)
    sent = await tab.receive_until("code_sent")
    assert sent["verification"]["status"] == "code_sent"
    await tab.send(type="verify", code="22222")
    verified = await tab.receive_until("verified")
    assert verified["verification"]["status"] == "verified"

    failures = [
        record
        for record in verification_log.records
        if record.name == "verification.worker"
        and record.getMessage().startswith("The Telegram worker failed")
    ]
    assert len(failures) == 1
    assert failures[0].levelno == logging.ERROR
    assert "lease fence exploded" in str(failures[0].exc_info[1])


class ScriptedWorker:
    """Just what ``serve`` uses of a worker: ``ready`` and ``run``."""

    def __init__(self, number: int, *, fails: bool) -> None:
        self.number = number
        self.fails = fails
        self.ready = asyncio.Event()
        self.stopped = False

    async def run(self) -> None:
        if self.fails:
            raise RuntimeError(f"worker {self.number} could not start")
        self.ready.set()
        try:
            await asyncio.Event().wait()
        finally:
            self.stopped = True


async def test_serve_restarts_a_failing_worker_with_backoff(verification_log):
    made: list[ScriptedWorker] = []
    readied: list[ScriptedWorker] = []

    def make_worker() -> ScriptedWorker:
        worker = ScriptedWorker(len(made) + 1, fails=len(made) < 2)
        made.append(worker)
        return worker

    started = time.monotonic()
    task = asyncio.ensure_future(core.serve(make_worker, on_ready=readied.append))
    try:
        await eventually(lambda: readied, what="a ready worker")
        waited = time.monotonic() - started
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    assert [worker.number for worker in made] == [1, 2, 3]
    assert readied == [made[2]]
    # 0.5 s after the first failure, twice that after the second.
    assert waited >= 1.4
    failures = [
        record
        for record in verification_log.records
        if record.getMessage().startswith("The Telegram worker failed")
    ]
    assert [record.getMessage() for record in failures] == [
        "The Telegram worker failed; starting a new one in 0.5 s",
        "The Telegram worker failed; starting a new one in 1.0 s",
    ]
    assert [str(record.exc_info[1]) for record in failures] == [
        "worker 1 could not start",
        "worker 2 could not start",
    ]
    # Cancelling serve stops the worker it runs.
    assert made[2].stopped


# 2. A failed start of the embedded runtime undoes itself --------------------------------------


@pytest.fixture
def embedded_sandbox(settings, stop_runtime):
    settings.VERIFICATION = {
        **settings.VERIFICATION,
        "GATEWAY": "verification.gateway.telethon_gateway.TelethonGateway",
        "EMBEDDED_WORKER": True,
        "EMBEDDED_SANDBOX": True,
        "SANDBOX_STATE_FILE": "",
        "TELEGRAM_SERVER": "",
        "TELEGRAM_SERVER_PUBLIC_KEY": "",
        "LEASE_SECONDS": 30,
    }
    return settings


def key_file(port: int) -> Path:
    return Path(tempfile.gettempdir()) / f"verification-sandbox-{port}.pem"


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("failure", ["database", "never ready"])
async def test_a_failed_start_stops_the_sandbox_and_a_later_start_works(
    embedded_sandbox, monkeypatch, failure
):
    sandboxes: list[Any] = []
    start_sandbox = runtime.EmbeddedRuntime._start_sandbox

    def recorded_start(config: dict[str, Any]) -> Any:
        sandboxes.append(start_sandbox(config))
        return sandboxes[-1]

    monkeypatch.setattr(runtime.EmbeddedRuntime, "_start_sandbox", staticmethod(recorded_start))
    sign_ins: list[Any] = []

    if failure == "database":

        def release_sandbox() -> None:
            raise DatabaseError("database is locked")

        # The step right after the sandbox started fails.
        monkeypatch.setattr(services, "sender_account_release_sandbox", release_sandbox)
        with pytest.raises(DatabaseError):
            await runtime.ensure_started()
    else:

        async def failing_sign_in(self: Any, worker: Any) -> None:
            sign_ins.append(self)
            raise RuntimeError("the sandbox sender cannot sign in")

        # Its worker never gets ready, and the visitor whose socket started it goes away.
        monkeypatch.setattr(runtime.EmbeddedRuntime, "_connect_sandbox_sender", failing_sign_in)
        starting = asyncio.ensure_future(runtime.ensure_started())
        await eventually(lambda: len(sign_ins) >= 2, what="the worker to be restarted once")
        assert key_file(sandboxes[0].port).exists()
        starting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await starting

    port = sandboxes[0].port
    assert port_is_closed(port)
    assert not key_file(port).exists()
    assert runtime.current() is None
    if sign_ins:
        # The supervisor stopped too: no worker is started any more.
        assert sign_ins[0].task is None
        attempts = len(sign_ins)
        await asyncio.sleep(1.5)
        assert len(sign_ins) == attempts

    monkeypatch.undo()
    started = await runtime.ensure_started()
    assert started is not None and started is runtime.current()
    assert started.worker is not None and started.worker.ready.is_set()
    assert started.worker.held
    assert key_file(started.sandbox.port).read_text() == started.sandbox.public_key_pem


# 3. A Redis outage ------------------------------------------------------------------------------


class FlakyLayer(InMemoryChannelLayer):
    """An in-memory layer whose ``receive`` fails ``outage`` times, as Redis restarting does."""

    def __init__(self, outage: int) -> None:
        super().__init__()
        self.outage = outage

    async def receive(self, channel: str) -> dict[str, Any]:
        if self.outage:
            self.outage -= 1
            await asyncio.sleep(0)
            raise ConnectionError("Connection refused (Redis is restarting)")
        return await super().receive(channel)


async def test_the_worker_keeps_receiving_after_channel_layer_errors(
    fake_settings, verification_log
):
    layer = FlakyLayer(outage=3)
    worker = TelegramWorker(channel_layer=layer, gateway=FakeGateway())
    handled: list[dict[str, Any]] = []

    async def dispatch(message: dict[str, Any]) -> None:
        handled.append(message)

    worker._dispatch = dispatch
    # Sent while the layer is failing: they wait in the channel.
    for number in (1, 2):
        await layer.send("verification.worker.test", {"type": "telegram.cancel", "n": number})
    receiving = asyncio.ensure_future(worker._receive("verification.worker.test"))
    try:
        await eventually(lambda: len(handled) == 2, what="the queued messages")
        await layer.send("verification.worker.test", {"type": "telegram.cancel", "n": 3})
        await eventually(lambda: len(handled) == 3, what="a message sent after the outage")
        assert not receiving.done()
    finally:
        receiving.cancel()
        await asyncio.gather(receiving, return_exceptions=True)
    assert [message["n"] for message in handled] == [1, 2, 3]
    retries = [
        record
        for record in verification_log.records
        if record.getMessage().startswith("Receiving on verification.worker.test failed")
    ]
    assert [record.levelno for record in retries] == [logging.WARNING] * 3


class RedisServer:
    """A throwaway redis-server on its own port, which the test can stop and start again."""

    def __init__(self, command: str, port: int, log: Path, wait_until: Callable[..., Any]) -> None:
        self.command, self.port, self.log, self.wait_until = command, port, log, wait_until
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            [self.command, "--port", str(self.port), "--bind", "127.0.0.1"]
            + ["--save", "", "--appendonly", "no"],
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
        )
        self.wait_until(self.answers, timeout=10, what="redis-server")

    def answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.2) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(timeout=10)
        self.process = None


@pytest.fixture
def worker_site(tmp_path, postgres, redis_server_command, site_environment, free_port, wait_until):
    """PostgreSQL, a redis-server of our own, the sandbox, and a signed-in sender account."""
    name = f"passportsite_outage_{secrets.token_hex(4)}"
    with psycopg.connect(f"{postgres}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    redis_server = RedisServer(
        redis_server_command, free_port(), tmp_path / "redis.log", wait_until
    )
    sandbox = SandboxThread(resend_timeout=1, code_lifetime=120).start()
    key = tmp_path / "sandbox.pem"
    key.write_text(sandbox.public_key_pem)
    env = site_environment(
        DATABASE_URL=f"{postgres}/{name}",
        REDIS_URL=f"redis://127.0.0.1:{redis_server.port}/0",
        TELEGRAM_SERVER=sandbox.address,
        TELEGRAM_SERVER_PUBLIC_KEY=str(key),
        TELEGRAM_API_ID="1",
        TELEGRAM_API_HASH="sandbox",
        EMBEDDED_SANDBOX="0",
        EMBEDDED_WORKER="0",
        VERIFICATION_LEASE_SECONDS="6",
    )
    processes: dict[str, subprocess.Popen[bytes]] = {}

    def manage(*args: str, stdin: str = "") -> None:
        result = subprocess.run(
            [sys.executable, "manage.py", *args],
            cwd=ROOT,
            env=env,
            input=stdin.encode(),
            capture_output=True,
            timeout=60,
        )
        assert result.returncode == 0, result.stderr.decode()

    def start(label: str, *command: str) -> subprocess.Popen[bytes]:
        log = (tmp_path / f"{label}.log").open("wb")
        processes[label] = subprocess.Popen(
            command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        return processes[label]

    def logs() -> str:
        return "\n".join(
            f"--- {path.name}\n{path.read_text(errors='replace')[-4000:]}"
            for path in sorted(tmp_path.glob("*.log"))
        )

    site = {
        "redis": redis_server,
        "start": start,
        "log": lambda label: (tmp_path / f"{label}.log").read_text(errors="replace"),
        "logs": logs,
    }
    try:
        redis_server.start()
        manage("migrate", "--noinput")
        manage("telegram_login", "--phone", "+9996617001", stdin="11111\n")
        yield site
    except BaseException:
        print(logs())
        raise
    finally:
        for process in processes.values():
            if process.poll() is None:
                process.send_signal(signal.SIGINT)
        for process in processes.values():
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        redis_server.stop()
        sandbox.stop()
        with psycopg.connect(f"{postgres}/postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def receive_until(ws, kind: str, timeout: float = 15.0) -> dict[str, Any]:
    async with asyncio.timeout(timeout):
        while True:
            frame = json.loads(await ws.recv())
            if frame["type"] == kind:
                return frame


@pytest.mark.scale_out
def test_a_worker_process_rides_out_a_redis_outage(
    worker_site, free_port, wait_until, page_session
):
    python = sys.executable
    worker = worker_site["start"]("worker", python, "manage.py", "telegram_worker")
    wait_until(lambda: "ready" in worker_site["log"]("worker"), what="the worker")
    port = free_port()
    worker_site["start"](
        "web", python, "-m", "daphne", "-b", "127.0.0.1", "-p", str(port),
        "passportsite.asgi:application",
    )  # fmt: skip
    wait_until(lambda: not port_is_closed(port), what="the web process")

    # Redis goes away for a while and comes back empty.
    redis_server = worker_site["redis"]
    redis_server.stop()
    wait_until(
        lambda: (
            worker.poll() is not None
            or any(
                line in worker_site["log"]("worker") for line in ("Receiving on", "worker failed")
            )
        ),
        timeout=10,
        what="the worker to notice the outage",
    )
    time.sleep(1.5)
    redis_server.start()
    assert worker.poll() is None, worker_site["log"]("worker")

    cookie = page_session(port)

    async def journey() -> None:
        async with websockets.connect(
            f"ws://127.0.0.1:{port}/ws/verification/",
            origin=f"http://127.0.0.1:{port}",
            additional_headers={"Cookie": cookie},
        ) as ws:
            assert json.loads(await ws.recv()) == {"type": "state", "verification": None}
            await ws.send(json.dumps({"type": "send_code", "phone_number": PHONE}))
            sent = await receive_until(ws, "code_sent")
            assert sent["verification"]["code"] == {"type": "sms", "length": 5}
            await ws.send(json.dumps({"type": "verify", "code": "22222"}))
            verified = await receive_until(ws, "verified")
            assert verified["verification"]["status"] == "verified"

    try:
        asyncio.run(journey())
    except BaseException:
        print(worker_site["logs"]())
        raise
    assert worker.poll() is None
    log = worker_site["log"]("worker")
    # The same worker served before and after the outage: it was not restarted.
    assert log.count("ready; Ctrl-C to stop.") == 1


# 4. Answers by the deadline, one watchdog per request ---------------------------------------


@pytest.fixture
def short_deadlines(ready, settings, monkeypatch):
    settings.VERIFICATION = {**settings.VERIFICATION, "REQUEST_TIMEOUT": 1}
    monkeypatch.setattr(engine, "ANSWER_GRACE", 0.3)
    return settings


async def code_sent(open_tab, browser_session):
    tab, _ = await open_tab(await browser_session())
    await tab.send(type="send_code", phone_number=PHONE)
    sent = await tab.receive_until("code_sent")
    return tab, sent["verification"]["id"]


@pytest.mark.django_db(transaction=True)
async def test_a_verify_slower_than_its_deadline_gets_one_answer(
    short_deadlines, open_tab, browser_session
):
    tab, verification_id = await code_sent(open_tab, browser_session)
    FakeGateway.delay = 2.5
    await tab.send(type="verify", code="22222")
    # Past the deadline, the grace, and the time Telegram would have answered.
    frames = await frames_during(tab, 3.5)
    assert [(frame["type"], frame.get("code")) for frame in frames] == [
        ("error", "TELEGRAM_UNAVAILABLE")
    ]
    # Telegram never judged the code: no attempt was used up.
    assert frames[0]["verification"]["attempts_left"] == 5
    row = await PhoneVerification.objects.aget(pk=verification_id)
    assert (row.status, row.attempts) == ("code_sent", 0)

    FakeGateway.delay = 0
    await tab.send(type="verify", code="22222")
    assert (await tab.receive_until("verified"))["verification"]["attempts_left"] == 5


@pytest.mark.django_db(transaction=True)
async def test_a_verify_queued_past_its_deadline_is_answered_without_telegram(
    short_deadlines, open_tab, browser_session
):
    tab, verification_id = await code_sent(open_tab, browser_session)
    FakeGateway.delay = 2.5
    await tab.send(type="verify", code="11111")
    # The second waits behind the first (one request per session at a time).
    await tab.send(type="verify", code="22222")
    await asyncio.sleep(0.3)
    # Only the first call is slow: a second one that reached Telegram would verify at once.
    FakeGateway.delay = 0
    frames = await frames_during(tab, 3.2)
    assert [(frame["type"], frame.get("code")) for frame in frames] == [
        ("error", "TELEGRAM_UNAVAILABLE"),
        ("error", "TELEGRAM_UNAVAILABLE"),
    ]
    assert [frame["verification"]["attempts_left"] for frame in frames] == [5, 5]
    row = await PhoneVerification.objects.aget(pk=verification_id)
    assert (row.status, row.attempts) == ("code_sent", 0)


@pytest.mark.django_db(transaction=True)
async def test_back_to_back_verifies_each_get_their_own_watchdog(
    short_deadlines, open_tab, browser_session, monkeypatch
):
    tab, verification_id = await code_sent(open_tab, browser_session)
    taken: list[str] = []

    async def dies_holding_it(self: Handlers, message: dict[str, Any]) -> None:
        # A worker that dies with the request: it never answers.
        taken.append(message["request"])

    monkeypatch.setattr(Handlers, "verify", dies_holding_it)
    started = time.monotonic()
    await tab.send(type="verify", code="11111")
    await tab.send(type="verify", code="22222")
    frames = await frames_during(tab, 2.5)
    assert len(set(taken)) == 2
    assert [(frame["type"], frame.get("code")) for frame in frames] == [
        ("error", "TELEGRAM_UNAVAILABLE"),
        ("error", "TELEGRAM_UNAVAILABLE"),
    ]
    assert [frame["verification"]["attempts_left"] for frame in frames] == [5, 5]
    # The watchdogs waited for the deadline and the grace.
    assert time.monotonic() - started >= 1.3
    row = await PhoneVerification.objects.aget(pk=verification_id)
    assert (row.status, row.attempts) == ("code_sent", 0)


# 5. A request given up is never sent late ------------------------------------------------------


@pytest.mark.integration
@pytest.mark.django_db(transaction=True)
async def test_a_send_given_up_is_not_sent_after_a_reconnect(
    sandbox_settings,
    sandbox_sender,
    settings,
    open_tab,
    browser_session,
):
    sandbox = sandbox_settings
    settings.VERIFICATION = {**settings.VERIFICATION, "REQUEST_TIMEOUT": 2}
    late, later = "+9996647301", "+9996647302"
    tab, _ = await open_tab(await browser_session())
    connections = sandbox.stats["connections"]
    # The sandbox acknowledges the call and holds it; it only issues a code when it answers.
    sandbox.inject_delay("account.sendVerifyPhoneCode", 30)
    await tab.send(type="send_code", phone_number=late)
    error = await tab.receive_until("error", wait=10)
    assert error["code"] == "TELEGRAM_UNAVAILABLE"
    assert error["verification"]["status"] == "failed"

    # The connection drops with the call still held (the sandbox forgets it) and Telethon
    # reconnects, resending what it still has pending.
    sandbox.drop_connections()
    await eventually(
        lambda: sandbox.stats["connections"] > connections, what="Telethon to reconnect"
    )
    await asyncio.sleep(2)
    assert sandbox.codes_for(late) == []

    # The client still works.
    await tab.send(type="send_code", phone_number=later)
    await tab.receive_until("code_sent", wait=10)
    assert [code.code for code in sandbox.codes_for(later)] == ["44444"]
    assert sandbox.codes_for(late) == []
