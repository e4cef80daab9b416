"""Benchmark the site as deployed: real server processes, real WebSockets, a real MTProto server.

For each configuration it starts a standalone sandbox (``manage.py telegram_sandbox``) and
measures the floor on it, the raw Telethon client calling account.sendVerifyPhoneCode, then
starts the site and measures, from a separate client process (bench/load.py): one visitor at a
time, a burst of visitors at once, the servers' CPU time per verification (from /proc) and their
memory per idle WebSocket. Configurations:

  sqlite    the embedded defaults of `make run`: SQLite, in-memory channel layer, the sandbox
            and the Telegram worker inside one daphne process.
  postgres  scale-out: PostgreSQL, Redis, two daphne processes, one `manage.py telegram_worker`,
            the standalone sandbox as Telegram.

Run from the repository root:  .venv/bin/python bench/run.py [--only sqlite|postgres]
docs/benchmark.md explains every figure.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import json
import os
import queue
import re
import resource
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# Sender accounts: +99966 1 0YYY numbers get the code 11111 and are never verified by the load.
SITE_SENDER = "+9996610000"
FLOOR_SENDER = "+9996610001"
SENDER_CODE = "11111"


class BenchFailed(Exception):
    pass


# Processes ---------------------------------------------------------------------------------


LIBC = ctypes.CDLL(None)
PR_SET_PDEATHSIG = 1


def child_setup() -> None:
    """In each child: the default signal handling (a shell may have made ours ignore SIGINT),
    and SIGTERM when the bench dies without stopping it (kill -9, a crash)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process, all its threads, from /proc/PID/stat."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def process_command(pid: str) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


def services_cpu_seconds(commands: tuple[str, ...] = ("postgres", "redis-server")) -> float:
    """CPU time of the PostgreSQL and Redis servers (every client's work, not only ours).

    PostgreSQL forks a backend per connection: the finished ones are counted through the
    postmaster's reaped-children time, the live ones through their own.
    """
    total = 0.0
    for stat_file in Path("/proc").glob("[0-9]*/stat"):
        try:
            stat = stat_file.read_text()
        except OSError:
            continue
        command = stat[stat.index("(") + 1 : stat.rindex(")")]
        if command not in commands:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()
        total += int(fields[11]) + int(fields[12])
        if command == "postgres" and process_command(fields[1]) != "postgres":
            total += int(fields[13]) + int(fields[14])  # the postmaster's reaped backends
    return total / CLOCK_TICKS


def machine_busy_seconds() -> float:
    """CPU time every process on the machine has used (all cores), from /proc/stat."""
    fields = [int(value) for value in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    user, nice, system, _idle, _iowait, irq, softirq, steal = fields[:8]
    return (user + nice + system + irq + softirq + steal) / CLOCK_TICKS


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise BenchFailed(f"no VmRSS for process {pid}")


class Processes:
    """Every process the bench starts, each logging to its own file, all stopped at the end."""

    def __init__(self, log_dir: Path, site: Path) -> None:
        self.log_dir = log_dir
        self.site = site
        self.running: dict[str, subprocess.Popen[bytes]] = {}

    def log(self, name: str) -> Path:
        return self.log_dir / f"{name}.log"

    def start(self, name: str, *args: str, env: dict[str, str], **popen: Any) -> Any:
        popen.setdefault("stdout", self.log(name).open("ab"))
        popen.setdefault("stdin", subprocess.DEVNULL)
        process = subprocess.Popen(
            [sys.executable, *args],
            cwd=self.site,
            env=env,
            stderr=self.log(name).open("ab"),
            # Our own session: a Ctrl-C reaches the bench only, which stops everything in order.
            start_new_session=True,
            preexec_fn=child_setup,
            **popen,
        )
        self.running[name] = process
        return process

    def manage(self, name: str, *args: str, env: dict[str, str], stdin: str = "") -> None:
        with self.log(name).open("ab") as log:
            result = subprocess.run(
                [sys.executable, "manage.py", *args],
                cwd=self.site,
                env=env,
                input=stdin.encode(),
                stdout=log,
                stderr=subprocess.STDOUT,
                timeout=120,
                start_new_session=True,
            )
        if result.returncode:
            raise BenchFailed(f"manage.py {' '.join(args)} failed:\n{self.tail(name)}")

    def tail(self, name: str, lines: int = 30) -> str:
        path = self.log(name)
        text = path.read_text(errors="replace") if path.exists() else ""
        return "\n".join(f"  {line}" for line in text.splitlines()[-lines:])

    def check_alive(self) -> None:
        for name, process in self.running.items():
            if process.poll() is not None:
                raise BenchFailed(f"{name} exited with {process.returncode}:\n{self.tail(name)}")

    def wait_for_port(self, port: int, name: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            with contextlib.suppress(OSError):
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                return
            time.sleep(0.1)
        raise BenchFailed(f"{name} did not listen on {port} within {timeout} s")

    def wait_for_log(self, name: str, text: str, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.check_alive()
            if text in self.log(name).read_text(errors="replace"):
                return
            time.sleep(0.1)
        raise BenchFailed(f"{name} did not log {text!r} within {timeout} s")

    def stop(self, *names: str) -> None:
        """Newest first (the web processes before the worker, the sandbox last, so nothing is
        left retrying a server that went away): SIGTERM, on which daphne, the worker and the
        sandbox shut down cleanly, then SIGKILL after 15 s."""
        for name in reversed(names or tuple(self.running)):
            process = self.running.pop(name, None)
            if process is None:
                continue
            if process.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                print(f"  {name} did not stop on SIGTERM within 15 s; killing it", file=sys.stderr)
                process.kill()
                process.wait()


class Client:
    """One run of bench/load.py: JSON lines out, words in."""

    def __init__(self, processes: Processes, phase: str, options: dict[str, Any]) -> None:
        self.processes = processes
        self.name = f"client-{phase}"
        self.process = processes.start(
            self.name,
            str(BENCH / "load.py"),
            phase,
            json.dumps(options),
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
        )
        self.lines: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.process.stdout:
            self.lines.put(line.decode())
        self.lines.put(None)

    def expect(self, event: str, timeout: float) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise BenchFailed(f"{self.name}: no {event!r} within {timeout:.0f} s") from None
            if line is None:
                self.process.wait()
                raise BenchFailed(
                    f"{self.name} exited ({self.process.returncode}) before {event!r}:\n"
                    + self.processes.tail(self.name)
                )
            message = json.loads(line)
            if message.get("event") == event:
                return message

    def say(self, word: str) -> None:
        self.process.stdin.write(f"{word}\n".encode())
        self.process.stdin.flush()

    def finish(self) -> None:
        self.process.wait(timeout=60)
        self.processes.running.pop(self.name, None)


# Measures ----------------------------------------------------------------------------------


def percentile(values: list[float], share: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(share * len(ordered) + 0.5) - 1))]


def latencies(values: list[float]) -> dict[str, float | None]:
    return {name: percentile(values, share) for name, share in PERCENTILES.items()}


PERCENTILES = {"p50": 0.50, "p95": 0.95, "p99": 0.99}


class Server:
    """The server processes whose counters are read: name → pid; and their logs."""

    def __init__(self, processes: Processes, names: list[str], sandbox: str | None) -> None:
        self.pids = {name: processes.running[name].pid for name in names}
        self.sandbox_pid = processes.running[sandbox].pid if sandbox else None
        self.logs = [processes.log(name) for name in [*names, *([sandbox] if sandbox else [])]]

    def cpu(self) -> dict[str, float]:
        counters = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        if self.sandbox_pid:
            counters["standalone sandbox"] = cpu_seconds(self.sandbox_pid)
        return counters

    def rss(self) -> int:
        return sum(rss_kb(pid) for pid in self.pids.values())

    def wait_quiet(self, timeout: float = 60) -> None:
        """Until the servers have worked off what the last phase left them (disconnects, ...):
        under a tenth of a core for half a second."""
        deadline = time.monotonic() + timeout
        last = sum(self.cpu().values())
        while time.monotonic() < deadline:
            time.sleep(0.5)
            now = sum(self.cpu().values())
            if now - last < 0.05:
                return
            last = now

    def log_marks(self) -> dict[Path, int]:
        return {path: path.stat().st_size for path in self.logs}

    def log_errors(self, marks: dict[Path, int]) -> dict[str, Any]:
        """ERROR and CRITICAL lines the servers logged since ``marks``, by message."""
        errors: dict[str, int] = {}
        for path, offset in marks.items():
            with path.open("rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
            for line in text.splitlines():
                match = LOG_ERROR.search(line)
                if match:
                    message = f"{path.stem}: {match.group(1).strip()[:160]}"
                    errors[message] = errors.get(message, 0) + 1
        ordered = sorted(errors.items(), key=lambda item: -item[1])
        return {"count": sum(errors.values()), "kinds": dict(ordered)}

    def extra_counters(self) -> dict[str, float]:
        return {}

    def services_cpu(self) -> float:
        return 0.0


LOG_ERROR = re.compile(r" (?:ERROR|CRITICAL) +(.*)")


def cpu_delta(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    return {name: after[name] - before[name] for name in before}


def floor(processes: Processes, sandbox: dict[str, Any], options: argparse.Namespace) -> dict:
    print(
        f"  floor: raw Telethon on the standalone sandbox, {options.floor_sequential} "
        f"sequential calls, then {options.floor_concurrent} at once",
        flush=True,
    )
    client = Client(
        processes,
        "floor",
        {
            "server": sandbox["address"],
            "public_key": Path(sandbox["key"]).read_text(),
            "sender_phone": FLOOR_SENDER,
            "sender_code": SENDER_CODE,
            "first_number": 0,
            "sequential": options.floor_sequential,
            "concurrent": options.floor_concurrent,
        },
    )
    result = client.expect("result", timeout=300)
    client.finish()
    return {
        "send": latencies(result["send"]),
        "verify": latencies(result["verify"]),
        "concurrent": len(result["concurrent"]),
        "concurrent_rate": len(result["concurrent"]) / result["concurrent_elapsed"],
        "concurrent_p50": percentile(result["concurrent"], 0.5),
    }


def measure_site(
    processes: Processes, server: Server, ports: list[int], options: argparse.Namespace
) -> dict[str, Any]:
    """Sequential visitors, the burst and the idle sockets against running web processes."""
    # Numbers the floor did not use, so no code is superseded across phases.
    first = 5 + options.floor_sequential + options.floor_concurrent
    warmup = 3 * len(ports)
    common = {"ports": ports, "timeout": options.timeout}
    result: dict[str, Any] = {}

    def run_phase(phase: str, settings: dict[str, Any], timeout: float) -> dict[str, Any]:
        """Start the client, let it load its pages, then count what the servers spend."""
        client = Client(processes, phase, {**common, **settings})
        ready = client.expect("ready", timeout=600)
        server.wait_quiet()
        marks, counters, before = server.log_marks(), server.extra_counters(), server.cpu()
        machine, services = machine_busy_seconds(), server.services_cpu()
        started = time.monotonic()
        client.say("go")
        answer = client.expect("result", timeout=timeout)
        cpu = cpu_delta(before, server.cpu())
        wall = time.monotonic() - started
        services = server.services_cpu() - services
        # What neither the servers, PostgreSQL, Redis nor the client used: other work.
        others = machine_busy_seconds() - machine - sum(cpu.values()) - services
        others -= answer["client_cpu"]
        client.finish()
        processes.check_alive()
        server.wait_quiet()
        done = answer["ok"]
        return {
            "ok": done,
            "count": settings["count"],
            "errors": answer["errors"],
            "server_errors": server.log_errors(marks),
            "cpu": cpu,
            "client_cpu": answer["client_cpu"],
            "wall": wall,
            "services_cpu": services,
            "other_cores": max(0.0, others) / wall,
            "connections": {
                name: value - counters[name] for name, value in server.extra_counters().items()
            },
            "warmup_errors": ready.get("warmup_errors"),
            **{name: latencies(answer[name]) for name in ("send", "verify", "whole", "connect")},
            "samples": {name: answer[name] for name in ("send", "verify", "whole")},
            **{name: answer[name] for name in ("elapsed", "last_verified") if name in answer},
        }

    print(f"  one visitor at a time: {options.sequential} verifications", flush=True)
    result["sequential"] = run_phase(
        "sequential",
        {"count": options.sequential, "warmup": warmup, "first_number": first},
        timeout=options.sequential * options.timeout * 3 + 60,
    )
    first += warmup + options.sequential

    print(f"  burst: {options.burst} verifications at once", flush=True)
    result["burst"] = run_phase(
        "burst",
        {"count": options.burst, "first_number": first},
        timeout=options.timeout * 4 + 120,
    )

    cookies = not options.cookieless_idle
    print(
        f"  idle: {options.idle_sockets} sockets"
        + (" (each after loading the page)" if cookies else " (no page, no cookie)"),
        flush=True,
    )
    client = Client(
        processes,
        "idle",
        {**common, "count": options.idle_sockets, "cookies": cookies, "opening_at_once": 100},
    )
    client.expect("ready", timeout=600)
    server.wait_quiet()
    time.sleep(options.settle)
    rss_before, marks = server.rss(), server.log_marks()
    client.say("go")
    opened = client.expect("opened", timeout=600)
    server.wait_quiet()
    time.sleep(options.settle)
    rss_after = server.rss()
    processes.check_alive()
    opening_errors = server.log_errors(marks)
    marks = server.log_marks()
    client.say("close")
    client.expect("result", timeout=120)
    client.finish()
    started = time.monotonic()
    server.wait_quiet()
    result["idle"] = {
        "open": opened["open"],
        "seconds": opened["seconds"],
        "errors": opened["errors"],
        "server_errors": opening_errors,
        "closing_server_errors": server.log_errors(marks),
        "closing_seconds": time.monotonic() - started,
        "rss_before": rss_before,
        "rss_after": rss_after,
        "cookies": cookies,
    }
    return result


# Configurations ----------------------------------------------------------------------------


def site_environment(options: argparse.Namespace, **values: str) -> dict[str, str]:
    """The site's variables set explicitly, so neither the caller's environment nor a .env
    file changes what is measured."""
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "passportsite.settings",
        "PYTHONUNBUFFERED": "1",
        "ALLOWED_HOSTS": "127.0.0.1,localhost",
        "LOG_LEVEL": options.log_level,
        "VERIFICATION_RATE_LIMITS": "off",
        "VERIFICATION_CHALLENGE_AFTER": "off",
        "VERIFICATION_NEW_SESSIONS_LIMIT": "off",
        # Every tab of the bench comes from 127.0.0.1: no cap on sockets per address.
        "VERIFICATION_MAX_SOCKETS_PER_ADDRESS": "0",
        "VERIFICATION_REQUIRE_LOGIN": "0",
        "VERIFICATION_MAX_ATTEMPTS": "5",
        "VERIFICATION_EXPIRES_AFTER": "600",
        "VERIFICATION_LEASE_SECONDS": "30",
        "SANDBOX_RESEND_TIMEOUT": "60",
        "SANDBOX_CODE_LIFETIME": "600",
        **values,
    }


def start_sandbox(processes: Processes, env: dict[str, str]) -> dict[str, Any]:
    port = free_port()
    key = processes.log_dir / f"sandbox-{port}.pem"
    processes.start(
        "sandbox",
        "manage.py",
        "telegram_sandbox",
        "--port",
        str(port),
        "--public-key-file",
        str(key),
        env=env,
    )
    processes.wait_for_port(port, "the standalone sandbox")
    return {"address": f"127.0.0.1:{port}", "key": str(key)}


def daphne(processes: Processes, name: str, port: int, env: dict[str, str]) -> None:
    processes.start(
        name,
        "-m",
        "daphne",
        "-b",
        "127.0.0.1",
        "-p",
        str(port),
        "passportsite.asgi:application",
        env=env,
    )


def run_sqlite(processes: Processes, options: argparse.Namespace) -> dict[str, Any]:
    print("SQLite, embedded defaults (one daphne: in-memory layer, embedded sandbox and worker)")
    work = processes.log_dir / "sqlite"
    work.mkdir()
    env = site_environment(
        options,
        DEBUG="1",
        DATABASE_URL=f"sqlite:///{work / 'db.sqlite3'}",
        REDIS_URL="",
        TELEGRAM_SERVER="",
        TELEGRAM_SERVER_PUBLIC_KEY="",
        TELEGRAM_API_ID="0",
        TELEGRAM_API_HASH="",
        EMBEDDED_SANDBOX="1",
        EMBEDDED_WORKER="1",
        SANDBOX_STATE_FILE=str(work / "sandbox-state.json"),
    )
    sandbox = start_sandbox(processes, env)
    result: dict[str, Any] = {"floor": floor(processes, sandbox, options)}
    # The site has its own sandbox inside daphne; this one was only for the floor.
    processes.stop("sandbox")
    processes.manage("sqlite-migrate", "migrate", "--noinput", env=env)
    port = free_port()
    daphne(processes, "daphne", port, env)
    processes.wait_for_port(port, "daphne")
    server = Server(processes, ["daphne"], sandbox=None)
    result.update(measure_site(processes, server, [port], options))
    processes.stop()
    return result


class ScaleOutServer(Server):
    def __init__(self, *args: Any, dsn: str, redis_client: Any, database: str) -> None:
        super().__init__(*args)
        self.dsn = dsn
        self.redis = redis_client
        self.database = database

    def services_cpu(self) -> float:
        return services_cpu_seconds()

    def extra_counters(self) -> dict[str, float]:
        """Connections opened so far to PostgreSQL (this database) and Redis (all clients)."""
        import psycopg

        with psycopg.connect(self.dsn, autocommit=True) as connection:
            # Backends report their session counts when they end or every second or so.
            time.sleep(1.5)
            connection.execute("SELECT pg_stat_clear_snapshot()")
            (sessions,) = connection.execute(
                "SELECT sessions FROM pg_stat_database WHERE datname = %s", [self.database]
            ).fetchone()
        return {
            "PostgreSQL sessions": sessions,
            "Redis connections": self.redis.info("stats")["total_connections_received"],
        }


def run_postgres(processes: Processes, options: argparse.Namespace) -> dict[str, Any]:
    import psycopg
    import redis

    print("PostgreSQL + Redis, scale-out (two daphne, one telegram_worker, the standalone sandbox)")
    database = f"passportsite_bench_{secrets.token_hex(4)}"
    admin_dsn = f"{options.postgres}/postgres"
    redis_url = f"{options.redis}/{options.redis_db}"
    redis_client = redis.Redis.from_url(redis_url)
    redis_client.flushdb()
    with psycopg.connect(admin_dsn, autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{database}"')
    try:
        base = site_environment(options)
        sandbox = start_sandbox(processes, base)
        result: dict[str, Any] = {"floor": floor(processes, sandbox, options)}
        env = site_environment(
            options,
            DEBUG="0",
            # Plain HTTP on 127.0.0.1: no proxy in front to terminate TLS.
            SECURE_SSL_REDIRECT="0",
            DATABASE_URL=f"{options.postgres}/{database}",
            REDIS_URL=redis_url,
            TELEGRAM_SERVER=sandbox["address"],
            TELEGRAM_SERVER_PUBLIC_KEY=sandbox["key"],
            TELEGRAM_API_ID="1",
            TELEGRAM_API_HASH="sandbox",
            EMBEDDED_SANDBOX="0",
            EMBEDDED_WORKER="0",
        )
        processes.manage("postgres-migrate", "migrate", "--noinput", env=env)
        # With DEBUG off the page needs its collected static files (README, Deployment).
        processes.manage("postgres-collectstatic", "collectstatic", "--noinput", env=env)
        processes.manage(
            "postgres-login",
            "telegram_login",
            "--phone",
            SITE_SENDER,
            env=env,
            stdin=f"{SENDER_CODE}\n",
        )
        processes.start("worker", "manage.py", "telegram_worker", env=env)
        processes.wait_for_log("worker", "ready")
        ports = [free_port(), free_port()]
        for number, port in enumerate(ports, 1):
            daphne(processes, f"daphne-{number}", port, env)
        for port in ports:
            processes.wait_for_port(port, "daphne")
        server = ScaleOutServer(
            processes,
            ["daphne-1", "daphne-2", "worker"],
            "sandbox",
            dsn=f"{options.postgres}/{database}",
            redis_client=redis_client,
            database=database,
        )
        result.update(measure_site(processes, server, ports, options))
        processes.stop()
        return result
    finally:
        processes.stop()
        with contextlib.suppress(Exception):
            redis_client.flushdb()
        with psycopg.connect(admin_dsn, autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')


CONFIGURATIONS = {
    "sqlite": ("SQLite, embedded (1 daphne)", run_sqlite),
    "postgres": ("PostgreSQL + Redis (2 daphne + worker)", run_postgres),
}


# Report ------------------------------------------------------------------------------------


def ms(value: float | None) -> str:
    return "—" if value is None else f"{value * 1000:.1f}"


def spread(values: dict[str, float | None], *names: str) -> str:
    return " / ".join(ms(values[name]) for name in names) + " ms"


def ratio(value: float | None, base: float | None) -> str:
    return "—" if not value or not base else f"{value / base:.1f}×"


def cpu_per(measured: dict[str, Any]) -> str:
    cpu, done = measured["cpu"], measured["ok"]
    if not done:
        return "—"
    server = sum(seconds for name, seconds in cpu.items() if name != "standalone sandbox")
    text = f"{server / done * 1000:.1f} ms"
    if "standalone sandbox" in cpu:
        text += (
            f" (+ sandbox {cpu['standalone sandbox'] / done * 1000:.1f} ms,"
            f" PostgreSQL + Redis {measured['services_cpu'] / done * 1000:.1f} ms)"
        )
    return text


def count_text(errors: dict[str, Any]) -> str:
    if not errors["count"]:
        return "0"
    kinds = ", ".join(f"{count} {kind}" for kind, count in list(errors["kinds"].items())[:3])
    return f"{errors['count']} ({kinds})"


def rate(burst: dict[str, Any]) -> str:
    if not burst["ok"]:
        return "0"
    seconds = burst["last_verified"]
    return f"{burst['ok'] / seconds:.1f} per s ({burst['ok']} in {seconds:.1f} s)"


def table(results: dict[str, dict[str, Any]], options: argparse.Namespace) -> str:
    names = list(results)
    rows: list[tuple[str, list[str]]] = []

    def row(label: str, render: Any) -> None:
        cells = []
        for name in names:
            try:
                cells.append(render(results[name]))
            except (KeyError, TypeError, ZeroDivisionError):
                cells.append("—")
        rows.append((label, cells))

    row(
        f"1 visitor ({options.sequential}): send_code → code_sent p50 / p95 / p99",
        lambda r: spread(r["sequential"]["send"], "p50", "p95", "p99"),
    )
    row(
        f"  floor: Telethon sendVerifyPhoneCode p50 / p95 ({options.floor_sequential} in a row)",
        lambda r: spread(r["floor"]["send"], "p50", "p95"),
    )
    row(
        "  ratio: send_code p50 ÷ floor p50",
        lambda r: ratio(r["sequential"]["send"]["p50"], r["floor"]["send"]["p50"]),
    )
    row(
        "1 visitor: verify → verified p50 / p95 / p99",
        lambda r: spread(r["sequential"]["verify"], "p50", "p95", "p99"),
    )
    row(
        "  floor: Telethon verifyPhone p50 / p95",
        lambda r: spread(r["floor"]["verify"], "p50", "p95"),
    )
    row(
        "  ratio: verify p50 ÷ floor p50",
        lambda r: ratio(r["sequential"]["verify"]["p50"], r["floor"]["verify"]["p50"]),
    )
    row("1 visitor: errors", lambda r: count_text(r["sequential"]["errors"]))
    row(
        "1 visitor: server CPU per verification",
        lambda r: cpu_per(r["sequential"]),
    )
    row(f"burst of {options.burst}: verifications per s", lambda r: rate(r["burst"]))
    row(
        f"  floor: {options.floor_concurrent} concurrent sendVerifyPhoneCode",
        lambda r: f"{r['floor']['concurrent_rate']:.0f} per s",
    )
    row("burst: whole verification p50 / p99", lambda r: spread(r["burst"]["whole"], "p50", "p99"))
    row(
        "burst: send_code → code_sent p50 / p99", lambda r: spread(r["burst"]["send"], "p50", "p99")
    )
    row("burst: verify → verified p50 / p99", lambda r: spread(r["burst"]["verify"], "p50", "p99"))
    row("burst: errors seen by the tabs", lambda r: count_text(r["burst"]["errors"]))
    row(
        "burst: ERROR lines in the server logs", lambda r: str(r["burst"]["server_errors"]["count"])
    )
    row(
        "burst: server CPU per verification",
        lambda r: cpu_per(r["burst"]),
    )
    row(
        "burst: cores busy, server / client",
        lambda r: (
            f"{sum(r['burst']['cpu'].values()) / r['burst']['elapsed']:.2f} / "
            f"{r['burst']['client_cpu'] / r['burst']['elapsed']:.2f}"
        ),
    )
    row(
        f"idle: server memory per socket ({options.idle_sockets})",
        lambda r: (
            f"{(r['idle']['rss_after'] - r['idle']['rss_before']) / r['idle']['open']:.1f} KB"
            f" ({r['idle']['open']} open)"
        ),
    )
    row(
        "idle: ERROR lines in the server logs, opening / closing",
        lambda r: (
            f"{r['idle']['server_errors']['count']} / {r['idle']['closing_server_errors']['count']}"
        ),
    )
    headers = ["measure", *(CONFIGURATIONS[name][0] for name in names)]
    widths = [max(len(headers[0]), *(len(label) for label, _ in rows))]
    for column, _ in enumerate(names):
        widths.append(max(len(headers[column + 1]), *(len(cells[column]) for _, cells in rows)))

    def line(cells: list[str]) -> str:
        return (
            "| "
            + " | ".join(cell.ljust(width) for cell, width in zip(cells, widths, strict=True))
            + " |"
        )

    return "\n".join(
        [
            line(headers),
            "|" + "|".join("-" * (width + 2) for width in widths) + "|",
            *(line([label, *cells]) for label, cells in rows),
        ]
    )


def details(name: str, result: dict[str, Any]) -> list[str]:
    out = [f"{CONFIGURATIONS[name][0]}:", f"  {result['note']}"]
    for phase in ("sequential", "burst"):
        measured = result.get(phase)
        if not measured:
            continue
        parts = ", ".join(
            f"{process} {seconds:.2f} s" for process, seconds in measured["cpu"].items()
        )
        services = (
            f"PostgreSQL + Redis {measured['services_cpu']:.2f} s; "
            if "standalone sandbox" in measured["cpu"]
            else ""
        )
        out.append(
            f"  {phase}: CPU {parts}; {services}client {measured['client_cpu']:.2f} s; "
            f"everything else on the machine {measured['other_cores']:.2f} cores"
        )
        if measured["other_cores"] > 0.1:
            out.append(f"  WARNING: the machine was not quiet during the {phase} phase")
        for counter, value in measured["connections"].items():
            per = f" ({value / measured['ok']:.1f} per verification)" if measured["ok"] else ""
            out.append(f"  {phase}: {counter} opened: {value:.0f}{per}")
    if "burst" in result:
        burst = result["burst"]
        out.append(
            f"  burst: socket open p50 / p99 {spread(burst['connect'], 'p50', 'p99')}; "
            f"every tab done after {burst['elapsed']:.1f} s"
        )
    if "idle" in result:
        idle = result["idle"]
        out.append(
            f"  idle: server RSS {idle['rss_before'] / 1024:.1f} MB → "
            f"{idle['rss_after'] / 1024:.1f} MB with {idle['open']} sockets, opened in "
            f"{idle['seconds']:.1f} s "
            + ("(each after loading the page)" if idle["cookies"] else "(without a page)")
            + f"; busy for {idle['closing_seconds']:.1f} s after they closed"
        )
    problems = [
        ("warm-up, seen by the tabs", result.get("sequential", {}).get("warmup_errors")),
        *(
            (f"{phase}, seen by the tabs", result.get(phase, {}).get("errors"))
            for phase in ("sequential", "burst", "idle")
        ),
        *(
            (f"{phase}, in the server logs", result.get(phase, {}).get("server_errors"))
            for phase in ("sequential", "burst", "idle")
        ),
        ("idle closing, in the server logs", result.get("idle", {}).get("closing_server_errors")),
    ]
    for label, errors in problems:
        if errors and errors["count"]:
            out.append(f"  errors ({label}):")
            examples = errors.get("examples", {})
            out.extend(
                f"    {count} × {kind}" + (f": {examples[kind]}" if kind in examples else "")
                for kind, count in list(errors["kinds"].items())[:5]
            )
    return out


# Main --------------------------------------------------------------------------------------


NOTES = {
    "sqlite": (
        "server = the daphne process, which also runs the embedded sandbox (a thread) and the "
        "embedded Telegram worker; the floor ran on a standalone sandbox on the same machine "
        "(stopped before the site started); DEBUG on"
    ),
    "postgres": (
        "server = both daphne processes and the telegram_worker; the standalone sandbox's CPU "
        "is shown apart; the floor ran on that same sandbox before the site started; DEBUG off"
    ),
}


def parse_arguments() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--only", choices=list(CONFIGURATIONS), help="one configuration")
    parser.add_argument(
        "--sequential", type=int, default=100, metavar="N", help="verifications one at a time (100)"
    )
    parser.add_argument(
        "--burst", type=int, default=300, metavar="N", help="verifications all at once (300)"
    )
    parser.add_argument(
        "--idle-sockets",
        type=int,
        default=2000,
        metavar="N",
        help="idle WebSockets for the memory measure (2000)",
    )
    parser.add_argument(
        "--cookieless-idle",
        action="store_true",
        help="open the idle sockets without loading the page first",
    )
    parser.add_argument(
        "--floor-sequential",
        type=int,
        default=200,
        metavar="N",
        help="raw Telethon calls one at a time (200)",
    )
    parser.add_argument(
        "--floor-concurrent",
        type=int,
        default=500,
        metavar="N",
        help="raw Telethon calls at once (500)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=30.0,
        metavar="S",
        help="seconds a tab waits for each answer; longer counts as an error (30)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=3.0,
        metavar="S",
        help="seconds to wait before reading memory (3)",
    )
    parser.add_argument(
        "--log-level",
        default="WARNING",
        help="LOG_LEVEL of the servers (WARNING; the site's own default is INFO)",
    )
    parser.add_argument(
        "--site",
        type=Path,
        default=ROOT,
        metavar="DIR",
        help="checkout to run the servers from (this repository)",
    )
    parser.add_argument(
        "--postgres",
        default="postgres://postgres@127.0.0.1:5432",
        help="PostgreSQL server (a fresh database is created, then dropped)",
    )
    parser.add_argument("--redis", default="redis://127.0.0.1:6379", help="Redis server")
    parser.add_argument(
        "--redis-db",
        type=int,
        default=13,
        help="Redis database number, flushed at start and end (13)",
    )
    parser.add_argument("--json", type=Path, metavar="FILE", help="also write the raw results")
    parser.add_argument("--keep-logs", action="store_true", help="keep the logs directory")
    return parser.parse_args()


def main() -> int:
    options = parse_arguments()
    options.site = options.site.resolve()
    if not (options.site / "manage.py").exists():
        raise SystemExit(f"{options.site} has no manage.py")
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if hard < options.idle_sockets * 2 + 200:
        raise SystemExit(f"open-file limit {hard} is too low for {options.idle_sockets} sockets")
    # Ctrl-C and SIGTERM stop the run through the finally blocks that stop every process (also
    # when started from a shell that made background jobs ignore SIGINT).
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    log_dir = Path(tempfile.mkdtemp(prefix="verification-bench-"))
    processes = Processes(log_dir, options.site)
    names = [options.only] if options.only else list(CONFIGURATIONS)
    print(f"Site: {options.site}; logs: {log_dir}; {os.cpu_count()} cores", flush=True)
    results: dict[str, dict[str, Any]] = {}
    failed = False
    try:
        for name in names:
            started = time.monotonic()
            try:
                results[name] = CONFIGURATIONS[name][1](processes, options)
                results[name]["note"] = NOTES[name]
            except BenchFailed as exc:
                failed = True
                print(f"  FAILED: {exc}", file=sys.stderr, flush=True)
            finally:
                processes.stop()
            print(f"  ({time.monotonic() - started:.0f} s)", flush=True)
    except KeyboardInterrupt:
        failed = True
        print("\nInterrupted; stopping every process.", file=sys.stderr)
    finally:
        processes.stop()
    if results:
        print()
        print(table(results, options))
        print()
        for name, result in results.items():
            print("\n".join(details(name, result)))
    if options.json:
        options.json.write_text(json.dumps(results, indent=2))
    if failed or options.keep_logs:
        print(f"\nLogs: {log_dir}", file=sys.stderr)
    else:
        shutil.rmtree(log_dir, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
