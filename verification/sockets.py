"""Open sockets per client address (``MAX_SOCKETS_PER_ADDRESS``), counted in this process.

Each open socket holds memory in the server and the consumer for as long as it stays open, so one
address opening thousands of them exhausts the process. The count is kept in this process only:
it costs no cache or database round trip on connect, and it needs none, since what it protects is
this process's memory. With N web processes behind a balancer an address may hold up to N times
the limit in all.
"""

from __future__ import annotations

from collections import Counter

#: Close code for a socket refused because its address has too many open: 1013 (try again later)
#: moved into the range an application may send. Sent before the handshake completes, so a
#: browser sees the connection fail (HTTP 403).
CLOSE_TOO_MANY_SOCKETS = 4013

_open: Counter[str] = Counter()


def socket_open(*, bucket: str, limit: int) -> bool:
    """Count one more socket from ``bucket``; False, counting nothing, when ``limit`` are open.

    A ``limit`` of 0 refuses nothing. A socket without an address is not counted.
    """
    if not bucket:
        return True
    if limit and _open[bucket] >= limit:
        return False
    _open[bucket] += 1
    return True


def socket_closed(*, bucket: str) -> None:
    """A socket counted by :func:`socket_open` closed."""
    if not bucket:
        return
    _open[bucket] -= 1
    if _open[bucket] <= 0:
        del _open[bucket]


def sockets_open(*, bucket: str) -> int:
    """How many sockets from ``bucket`` are open in this process."""
    return _open[bucket]
