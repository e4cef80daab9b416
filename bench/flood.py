"""Frame flood against a real daphne: what a socket that sends and never reads costs the server.

    .venv/bin/python bench/flood.py [--sockets 20] [--frames 50000] [--observe 20] [--root .]

Starts passportsite in one daphne process (SQLite in a temporary directory, embedded defaults),
loads the page for a session cookie, then opens ``--sockets`` sockets that each send ``--frames``
``state`` frames as fast as they can without reading a reply, while one more visitor asks for
``state`` every 50 ms and times the answer. Each flooding socket then reads for ``--observe``
seconds. Prints daphne's resident memory before, at its peak and at the end, the other visitor's
round trips, and how each flooding socket ended.
``--root`` runs another checkout (say, the commit before a change) with the same script.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import multiprocessing
import statistics
import time
from pathlib import Path
from typing import Any

import websockets
from embedded import embedded_site
from websockets.exceptions import ConnectionClosed


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def _set_cookie(response: http.client.HTTPResponse, name: str) -> str:
    for header, value in response.getheaders():
        if header.lower() == "set-cookie" and value.startswith(f"{name}="):
            return value.split(";")[0]
    raise RuntimeError(f"no {name} cookie was set")


def session_cookie(port: int) -> str:
    """Load the page, then ask for the session its first act gets (loading writes none)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    connection.request("GET", "/")
    response = connection.getresponse()
    response.read()
    csrf = _set_cookie(response, "csrftoken")
    headers = {"Cookie": csrf, "X-CSRFToken": csrf.split("=", 1)[1]}
    connection.request("POST", "/session/", headers=headers)
    response = connection.getresponse()
    response.read()
    return _set_cookie(response, "sessionid")


async def flood(url: str, headers: dict[str, str], frames: int, observe: float) -> str:
    """Send ``frames`` state frames without reading; how the socket ended."""
    message = json.dumps({"type": "state"})
    started = time.monotonic()
    try:
        async with websockets.connect(url, additional_headers=headers, max_queue=None) as ws:
            # Nothing is read while sending: the replies pile up, as an attacker's would.
            for _ in range(frames):
                await ws.send(message)
            elapsed = time.monotonic() - started
            answered = 0
            deadline = time.monotonic() + observe
            try:
                while True:
                    await asyncio.wait_for(ws.recv(), timeout=deadline - time.monotonic())
                    answered += 1
            except ConnectionClosed as exc:
                code = exc.rcvd.code if exc.rcvd else None
                ending = f"closed by the server ({code})"
            except (TimeoutError, ValueError):
                ending = f"still open {observe} s later"
    except ConnectionClosed as exc:
        code = exc.rcvd.code if exc.rcvd else None
        return f"closed by the server ({code}) while sending"
    return (
        f"sent {frames} frames in {elapsed:.1f} s, {max(0, answered - 1)} answered, {ending},"
        f" {time.monotonic() - started:.1f} s after the first"
    )


async def visitor(url: str, headers: dict[str, str], stop: Any) -> list[float]:
    times = []
    async with websockets.connect(url, additional_headers=headers) as ws:
        await ws.recv()
        while not stop.is_set():
            started = time.monotonic()
            await ws.send(json.dumps({"type": "state"}))
            await ws.recv()
            times.append((time.monotonic() - started) * 1000)
            await asyncio.sleep(0.05)
    return times


def visitor_process(url: str, headers: dict[str, str], stop: Any, out: Any) -> None:
    """The other visitor, in a process of its own: the flooders' sends would delay its loop."""
    out.put(asyncio.run(visitor(url, headers, stop)))


async def main(args: argparse.Namespace, port: int, pid: int) -> None:
    url = f"ws://127.0.0.1:{port}/ws/verification/"
    headers = {"Origin": f"http://127.0.0.1:{port}", "Cookie": session_cookie(port)}
    await asyncio.sleep(2)
    before = rss_mb(pid)
    context = multiprocessing.get_context("spawn")
    stop, out = context.Event(), context.Queue()
    quiet = context.Process(target=visitor_process, args=(url, headers, stop, out))
    quiet.start()
    await asyncio.sleep(2)
    peak = before

    async def sample() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, rss_mb(pid))
            await asyncio.sleep(0.1)

    sampler = asyncio.ensure_future(sample())
    floods = [
        asyncio.ensure_future(
            flood(url, {**headers, "Cookie": session_cookie(port)}, args.frames, args.observe)
        )
        for _ in range(args.sockets)
    ]
    endings = await asyncio.gather(*floods)
    stop.set()
    times = out.get(timeout=30)
    quiet.join(timeout=10)
    await sampler
    after = rss_mb(pid)
    print(f"daphne RSS: {before:.0f} MB before, {peak:.0f} MB peak, {after:.0f} MB at the end")
    print(
        f"other visitor's round trip during the flood: median {statistics.median(times):.1f} ms,"
        f" p99 {sorted(times)[int(len(times) * 0.99)]:.1f} ms, max {max(times):.1f} ms"
        f" ({len(times)} round trips)"
    )
    for ending, count in sorted({e: endings.count(e) for e in endings}.items()):
        print(f"{count} flooding socket(s): {ending}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sockets", type=int, default=20)
    parser.add_argument("--frames", type=int, default=50_000)
    parser.add_argument("--observe", type=float, default=20, help="seconds to read after sending")
    parser.add_argument("--root", default=str(Path(__file__).resolve().parent.parent))
    args = parser.parse_args()
    with embedded_site(Path(args.root).resolve()) as (port, pid):
        asyncio.run(main(args, port, pid))
