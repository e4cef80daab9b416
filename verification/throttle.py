"""Per-socket frame budget, applied before a frame costs any parsing or database work.

The ASGI server (daphne) queues every frame a client sends until the application reads it, with
no bound. :class:`FrameGuard` reads that queue as fast as frames arrive, so it never grows: each
frame takes a token from a bucket (``FRAME_RATE`` a second, ``FRAME_BURST`` at most), and the
frames let through wait in a queue of at most ``FRAME_BURST`` for the consumer. A socket that runs
out of tokens, or fills its queue, is closed with 4008, and the frames it had already sent are
dropped unread.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

#: Close code for a socket that sent frames faster than its budget: RFC 6455's 1008 (policy
#: violation) moved into the application range, the only one daphne (autobahn) lets an
#: application send.
CLOSE_TOO_MANY_FRAMES = 4008

Message = dict[str, Any]

logger = logging.getLogger("verification.consumer")


class FrameGuard:
    """Stands between the server's ``receive`` and a consumer for one socket."""

    def __init__(
        self,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
        *,
        rate: float,
        burst: int,
    ) -> None:
        self._receive = receive
        self._send = send
        self._rate = rate
        self._burst = burst
        self._tokens = float(burst)
        self._refilled = time.monotonic()
        self._queue: asyncio.Queue[Message] = asyncio.Queue()
        self._pump: asyncio.Task[None] | None = None
        self.closed = False

    async def receive(self) -> Message:
        """The consumer's ``receive``."""
        if self._pump is None:
            self._pump = asyncio.ensure_future(self._read())
        return await self._queue.get()

    def _take(self) -> bool:
        now = time.monotonic()
        self._tokens = min(self._burst, self._tokens + (now - self._refilled) * self._rate)
        self._refilled = now
        if self._tokens < 1:
            return False
        self._tokens -= 1
        return True

    async def _read(self) -> None:
        while True:
            message = await self._receive()
            if message["type"] == "websocket.receive":
                if self.closed:
                    continue
                if not self._take() or self._queue.qsize() >= self._burst:
                    self.closed = True
                    try:
                        await self._send({"type": "websocket.close", "code": CLOSE_TOO_MANY_FRAMES})
                    except Exception:
                        # Frames must still be read off the server's queue until it disconnects.
                        logger.exception("Closing a socket over its frame budget failed")
                    continue
            self._queue.put_nowait(message)
            if message["type"] == "websocket.disconnect":
                return

    def stop(self) -> None:
        if self._pump is not None:
            self._pump.cancel()
