"""Connection flood against a real daphne: what many open sockets from one address cost.

    .venv/bin/python bench/sockets.py [--sockets 2000] [--cap 50] [--root .]

Starts passportsite in one daphne process (SQLite in a temporary directory, embedded defaults,
``VERIFICATION_MAX_SOCKETS_PER_ADDRESS=--cap``; 0 switches the cap off), opens ``--sockets``
sockets from 127.0.0.1 and holds them, then closes them all. Prints daphne's resident memory
before, with the sockets held and after they closed, and how many sockets were accepted.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import sys
from pathlib import Path

import websockets

sys.path.insert(0, str(Path(__file__).resolve().parent))
from embedded import embedded_site  # noqa: E402
from flood import rss_mb, session_cookie  # noqa: E402


async def open_socket(url: str, origin: str) -> websockets.ClientConnection | None:
    try:
        connection = await websockets.connect(url, origin=origin, open_timeout=30)
        await connection.recv()  # the state frame: the consumer has done its connect
        return connection
    except Exception:
        return None


async def main(args: argparse.Namespace, port: int, pid: int) -> None:
    url = f"ws://127.0.0.1:{port}/ws/verification/"
    origin = f"http://127.0.0.1:{port}"
    # A page view starts the embedded worker and sandbox, which are not what is measured.
    session_cookie(port)
    await asyncio.sleep(3)
    before = rss_mb(pid)
    connections = []
    for start in range(0, args.sockets, 100):
        batch = range(start, min(start + 100, args.sockets))
        connections += await asyncio.gather(*(open_socket(url, origin) for _ in batch))
    await asyncio.sleep(2)
    held = rss_mb(pid)
    accepted = [connection for connection in connections if connection is not None]
    await asyncio.gather(*(connection.close() for connection in accepted))
    await asyncio.sleep(5)
    after = rss_mb(pid)
    print(
        f"cap {args.cap or 'off'}: {len(accepted)} of {args.sockets} sockets accepted; "
        f"daphne RSS {before:.0f} MB before, {held:.0f} MB while held, {after:.0f} MB after closing"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=2000)
    parser.add_argument("--cap", type=int, default=50)
    parser.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 2 * args.sockets + 500)), hard))
    cap = {"VERIFICATION_MAX_SOCKETS_PER_ADDRESS": str(args.cap)}
    with embedded_site(Path(args.root).resolve(), **cap) as (port, pid):
        asyncio.run(main(args, port, pid))
