"""Latency of the whole verification path, in one process on embedded defaults.

WebSocket consumer → channel layer → Telegram worker → real Telethon → sandbox over TCP, on a
throwaway SQLite database (or the database DATABASE_URL names). Run from the repository root:

    .venv/bin/python bench/flow.py [--verifications 50] [--concurrency 10]

Prints the median and 95th percentile of send_code → code_sent and verify → verified, and the
throughput of whole verifications.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
workdir = tempfile.mkdtemp(prefix="verification-bench-")
os.environ.setdefault("DATABASE_URL", f"sqlite:///{workdir}/bench.sqlite3")
os.environ.update(
    {
        "DJANGO_SETTINGS_MODULE": "passportsite.settings",
        "SANDBOX_STATE_FILE": f"{workdir}/sandbox.json",
        "LOG_LEVEL": "WARNING",
    }
)

import django  # noqa: E402

django.setup()

from django.conf import settings  # noqa: E402
from django.core.management import call_command  # noqa: E402

from verification import runtime  # noqa: E402
from verification.testing import VerificationTab  # noqa: E402


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


async def one(number: int, sends: list[float], verifies: list[float]) -> None:
    from channels.db import database_sync_to_async
    from django.contrib.sessions.backends.db import SessionStore

    store = SessionStore()
    await database_sync_to_async(store.create)()
    tab = VerificationTab(store.session_key)
    await tab.connect()
    digit = 1 + number % 9
    phone = f"+99966{digit}{number % 8000:04d}"
    try:
        started = time.perf_counter()
        await tab.send(type="send_code", phone_number=phone)
        await tab.receive_until("code_sent", wait=30)
        sends.append(time.perf_counter() - started)
        started = time.perf_counter()
        await tab.send(type="verify", code=str(digit) * 5)
        await tab.receive_until("verified", wait=30)
        verifies.append(time.perf_counter() - started)
    finally:
        await tab.close()


async def main(total: int, concurrency: int) -> None:
    settings.VERIFICATION = {**settings.VERIFICATION, "RATE_LIMITS": None}
    await runtime.ensure_started()
    sends: list[float] = []
    verifies: list[float] = []
    limit = asyncio.Semaphore(concurrency)

    async def run(number: int) -> None:
        async with limit:
            await one(number, sends, verifies)

    started = time.perf_counter()
    await asyncio.gather(*(run(n) for n in range(total)))
    elapsed = time.perf_counter() - started
    await runtime.shutdown()
    for name, values in (("send_code → code_sent", sends), ("verify → verified", verifies)):
        print(
            f"{name}: median {statistics.median(values) * 1000:.1f} ms, "
            f"p95 {percentile(values, 0.95) * 1000:.1f} ms ({len(values)} samples)"
        )
    print(f"{total} verifications, {concurrency} at a time: {total / elapsed:.1f} per second")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--verifications", type=int, default=50)
    parser.add_argument("--concurrency", type=int, default=10)
    options = parser.parse_args()
    call_command("migrate", verbosity=0)
    asyncio.run(main(options.verifications, options.concurrency))
