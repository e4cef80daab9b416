"""The benchmark's client side, run by bench/run.py as its own process (never by hand).

It knows the site only as a browser does: HTTP for the page and its session cookie, then
protocol v1 over WebSockets (docs/protocol.md). The floor phase talks MTProto to the sandbox
with the raw Telethon client. Results and handshakes go out as JSON lines on stdout; run.py
answers on stdin, so it can read the servers' counters between "ready" and "go".

    python bench/load.py PHASE '{"ports": [...], ...}'

Phases: ``floor``, ``sequential``, ``burst``, ``idle``.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import resource
import sys
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import websockets
from websockets.exceptions import ConnectionClosed, InvalidStatus

HOST = "127.0.0.1"
PAGE_CONNECTIONS = 8
ERROR_EXAMPLES = 5


def emit(**message: Any) -> None:
    sys.stdout.write(json.dumps(message) + "\n")
    sys.stdout.flush()


async def wait_for_line(expected: str) -> None:
    line = await asyncio.to_thread(sys.stdin.readline)
    if line.strip() != expected:
        raise SystemExit(f"expected {expected!r} from bench/run.py, got {line!r}")


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def test_number(index: int) -> tuple[str, str]:
    """The index-th sandbox test number (+99966XYYYY, code X five times) and its code.

    YYYY stays in 1000-7999: 0YYY is left to sender accounts, 8YYY numbers have a 2FA password
    and 9001-9008 play error scenarios.
    """
    digit = 1 + index % 9
    return f"+99966{digit}{1000 + (index // 9) % 7000:04d}", str(digit) * 5


class Errors:
    """Failures by kind, with the first message seen of each kind."""

    def __init__(self) -> None:
        self.counts: Counter[str] = Counter()
        self.examples: dict[str, str] = {}

    def add(self, kind: str, detail: str) -> None:
        self.counts[kind] += 1
        self.examples.setdefault(kind, detail[:300])

    def report(self) -> dict[str, Any]:
        return {
            "count": sum(self.counts.values()),
            "kinds": dict(self.counts.most_common()),
            "examples": dict(list(self.examples.items())[:ERROR_EXAMPLES]),
        }


# Pages -------------------------------------------------------------------------------------


def _set_cookie(response: http.client.HTTPResponse, name: str) -> str:
    for header, value in response.getheaders():
        if header.lower() == "set-cookie" and value.startswith(f"{name}="):
            return value.split(";", 1)[0]
    raise RuntimeError(f"no {name} cookie was set")


class Pages:
    """Loads the page for many tabs over a few keep-alive connections, as fast as the site
    answers, and asks each for its session (the ``sessionid`` cookie), as a tab does on the
    visitor's first act."""

    def __init__(self) -> None:
        self.local = threading.local()

    def _connection(self, port: int) -> http.client.HTTPConnection:
        connections = self.local.__dict__.setdefault("connections", {})
        if port not in connections:
            connections[port] = http.client.HTTPConnection(HOST, port, timeout=30)
        return connections[port]

    def load(self, port: int) -> str:
        for attempt in range(2):
            connection = self._connection(port)
            try:
                connection.request("GET", "/", headers={"Accept": "text/html"})
                response = connection.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                # The server closed a kept-alive connection: reconnect once.
                connection.close()
                del self.local.connections[port]
                if attempt:
                    raise
                continue
            if response.status != 200:
                raise RuntimeError(f"page HTTP {response.status}")
            # Loading writes no session: the tab asks for one, as the page does on a first act.
            csrf = _set_cookie(response, "csrftoken")
            headers = {"Cookie": csrf, "X-CSRFToken": csrf.split("=", 1)[1]}
            connection.request("POST", "/session/", headers=headers)
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"session HTTP {response.status}")
            return _set_cookie(response, "sessionid")
        raise AssertionError("unreachable")

    def load_many(self, ports: list[int], errors: Errors) -> list[str | None]:
        def one(port: int) -> str | None:
            try:
                return self.load(port)
            except Exception as exc:
                errors.add(f"page load: {type(exc).__name__}", str(exc))
                return None

        with ThreadPoolExecutor(PAGE_CONNECTIONS) as pool:
            return list(pool.map(one, ports))


# One tab -----------------------------------------------------------------------------------


class StepFailed(Exception):
    def __init__(self, kind: str, detail: str) -> None:
        super().__init__(detail)
        self.kind = kind


def connect(port: int, cookie: str | None, timeout: float) -> Any:
    return websockets.connect(
        f"ws://{HOST}:{port}/ws/verification/",
        origin=f"http://{HOST}:{port}",
        additional_headers={"Cookie": cookie} if cookie else None,
        open_timeout=timeout,
        close_timeout=5,
        ping_interval=None,
        max_queue=None,
    )


async def receive_until(socket: Any, kind: str, wait: float) -> dict[str, Any]:
    try:
        async with asyncio.timeout(wait):
            while True:
                frame = json.loads(await socket.recv())
                if frame.get("type") == kind:
                    return frame
                if frame.get("type") == "error":
                    raise StepFailed(f"error frame {frame.get('code')}", json.dumps(frame))
    except TimeoutError:
        raise StepFailed(f"timeout waiting for {kind}", f"no {kind} within {wait} s") from None


async def verification(
    port: int, cookie: str, index: int, wait: float, errors: Errors
) -> dict[str, float] | None:
    """One whole verification in a fresh tab: the times of its steps, or None on failure."""
    phone, code = test_number(index)
    started = time.perf_counter()
    try:
        async with connect(port, cookie, wait) as socket:
            await receive_until(socket, "state", wait)
            sent_at = time.perf_counter()
            await socket.send(json.dumps({"type": "send_code", "phone_number": phone}))
            await receive_until(socket, "code_sent", wait)
            verify_at = time.perf_counter()
            await socket.send(json.dumps({"type": "verify", "code": code}))
            await receive_until(socket, "verified", wait)
            done_at = time.perf_counter()
    except StepFailed as exc:
        errors.add(exc.kind, str(exc))
        return None
    except InvalidStatus as exc:
        errors.add(f"handshake HTTP {exc.response.status_code}", str(exc))
        return None
    except ConnectionClosed as exc:
        code_ = exc.rcvd.code if exc.rcvd else "none"
        errors.add(f"socket closed by server ({code_})", str(exc))
        return None
    except (OSError, TimeoutError, websockets.InvalidHandshake) as exc:
        errors.add(f"connect: {type(exc).__name__}", str(exc) or repr(exc))
        return None
    return {
        "send": verify_at - sent_at,
        "verify": done_at - verify_at,
        "whole": done_at - started,
        "connect": sent_at - started,
        "finished": done_at,
    }


def summary(results: list[dict[str, float] | None], errors: Errors) -> dict[str, Any]:
    done = [result for result in results if result]
    return {
        "ok": len(done),
        "send": [result["send"] for result in done],
        "verify": [result["verify"] for result in done],
        "whole": [result["whole"] for result in done],
        "connect": [result["connect"] for result in done],
        "errors": errors.report(),
    }


# Phases ------------------------------------------------------------------------------------


async def sequential(options: dict[str, Any]) -> None:
    """Warm-up, then one visitor at a time, alternating over the web processes."""
    ports, first, timeout = options["ports"], options["first_number"], options["timeout"]
    count, warmup = options["count"], options["warmup"]
    plan = [ports[i % len(ports)] for i in range(warmup + count)]
    errors = Errors()
    cookies = Pages().load_many(plan, errors)
    for i in range(warmup):
        if cookies[i]:
            await verification(plan[i], cookies[i], first + i, timeout, errors)
    warmup_errors, errors = errors, Errors()
    emit(event="ready", warmup_errors=warmup_errors.report())
    await wait_for_line("go")
    cpu = cpu_seconds()
    results: list[dict[str, float] | None] = []
    for i in range(warmup, warmup + count):
        if cookies[i] is None:
            errors.add("page load failed", "see the warm-up errors")
            results.append(None)
            continue
        results.append(await verification(plan[i], cookies[i], first + i, timeout, errors))
    emit(event="result", client_cpu=cpu_seconds() - cpu, **summary(results, errors))


async def burst(options: dict[str, Any]) -> None:
    """Every tab at once, each with its own session; the pages are loaded beforehand."""
    ports, first, timeout, count = (
        options["ports"],
        options["first_number"],
        options["timeout"],
        options["count"],
    )
    plan = [ports[i % len(ports)] for i in range(count)]
    errors = Errors()
    cookies = Pages().load_many(plan, errors)
    emit(event="ready")
    await wait_for_line("go")
    cpu = cpu_seconds()
    started = time.perf_counter()

    async def tab(i: int) -> dict[str, float] | None:
        cookie = cookies[i]
        if cookie is None:
            return None
        return await verification(plan[i], cookie, first + i, timeout, errors)

    results = await asyncio.gather(*(tab(i) for i in range(count)))
    ended = time.perf_counter()
    finished = [result["finished"] for result in results if result]
    emit(
        event="result",
        client_cpu=cpu_seconds() - cpu,
        elapsed=ended - started,
        last_verified=(max(finished) - started) if finished else None,
        **summary(results, errors),
    )


async def idle(options: dict[str, Any]) -> None:
    """Open many sockets that then do nothing, hold them until told, then close them."""
    ports, count, timeout = options["ports"], options["count"], options["timeout"]
    plan = [ports[i % len(ports)] for i in range(count)]
    errors = Errors()
    if options["cookies"]:
        cookies: list[str | None] = Pages().load_many(plan, errors)
    else:
        cookies = [None] * count
    emit(event="ready")
    await wait_for_line("go")
    limit = asyncio.Semaphore(options["opening_at_once"])
    sockets: list[Any] = []

    async def open_one(i: int) -> None:
        if options["cookies"] and cookies[i] is None:
            return
        async with limit:
            try:
                socket = await connect(plan[i], cookies[i], timeout)
                async with asyncio.timeout(timeout):
                    frame = json.loads(await socket.recv())
                if frame.get("type") != "state":
                    raise StepFailed("unexpected first frame", json.dumps(frame))
                sockets.append(socket)
            except StepFailed as exc:
                errors.add(exc.kind, str(exc))
            except InvalidStatus as exc:
                errors.add(f"handshake HTTP {exc.response.status_code}", str(exc))
            except (OSError, TimeoutError, ConnectionClosed, websockets.InvalidHandshake) as exc:
                errors.add(f"connect: {type(exc).__name__}", str(exc) or repr(exc))

    started = time.perf_counter()
    await asyncio.gather(*(open_one(i) for i in range(count)))
    emit(
        event="opened",
        open=len(sockets),
        seconds=time.perf_counter() - started,
        errors=errors.report(),
    )
    await wait_for_line("close")
    await asyncio.gather(*(socket.close() for socket in sockets), return_exceptions=True)
    emit(event="result", closed=len(sockets))


async def floor(options: dict[str, Any]) -> None:
    """The raw Telethon client against the sandbox: what one Telegram request costs."""
    from telethon import TelegramClient, functions, types
    from telethon.crypto import rsa
    from telethon.sessions import StringSession

    rsa.add_key(options["public_key"], old=False)
    host, _, port = options["server"].rpartition(":")
    client = TelegramClient(
        StringSession(),
        1,
        "sandbox",
        receive_updates=False,
        flood_sleep_threshold=0,
        raise_last_call_error=True,
    )
    client.session.set_dc(2, host, int(port))
    await client.connect()
    try:
        phone = options["sender_phone"]
        await client.send_code_request(phone)
        await client.sign_in(phone, options["sender_code"])

        def send(phone: str) -> Any:
            return functions.account.SendVerifyPhoneCodeRequest(
                phone_number=phone, settings=types.CodeSettings(allow_missed_call=True)
            )

        first = options["first_number"]
        for i in range(5):  # warm-up
            await client(send(test_number(first + i)[0]))
        first += 5
        sends: list[float] = []
        verifies: list[float] = []
        for i in range(options["sequential"]):
            phone, code = test_number(first + i)
            started = time.perf_counter()
            sent = await client(send(phone))
            sent_at = time.perf_counter()
            await client(
                functions.account.VerifyPhoneRequest(
                    phone_number=phone, phone_code_hash=sent.phone_code_hash, phone_code=code
                )
            )
            verifies.append(time.perf_counter() - sent_at)
            sends.append(sent_at - started)
        first += options["sequential"]

        async def timed(phone: str) -> float:
            started = time.perf_counter()
            await client(send(phone))
            return time.perf_counter() - started

        started = time.perf_counter()
        concurrent = await asyncio.gather(
            *(timed(test_number(first + i)[0]) for i in range(options["concurrent"]))
        )
        elapsed = time.perf_counter() - started
    finally:
        await client.disconnect()
    emit(
        event="result",
        send=sends,
        verify=verifies,
        concurrent=list(concurrent),
        concurrent_elapsed=elapsed,
    )


PHASES = {"floor": floor, "sequential": sequential, "burst": burst, "idle": idle}


def main() -> None:
    phase, options = sys.argv[1], json.loads(sys.argv[2])
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    asyncio.run(PHASES[phase](options))


if __name__ == "__main__":
    main()
