"""Send limits: sliding windows kept in the default cache, counted together with the check.

A limit ``(count, seconds)`` allows ``count`` sends in any ``seconds``-long span, not per clock
window: the window is cut into :data:`SLICES` slices, each an integer counter in the cache, and a
send is judged against every slice the span touches. Counting the whole oldest slice errs on the
strict side: a refused visitor may wait up to one slice longer than an exact log would make them,
and no span ever holds more than ``count`` sends.

A send is counted first (the cache's atomic ``incr``) and judged after, so two processes that
send at once each see the other's send; one refused gives its count back. A lost race refuses
too many, never admits too many. This holds on every cache whose ``add`` and ``incr`` are atomic:
Redis, Memcached and the local-memory cache (per process).
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

from django.core.cache import cache

from .errors import ErrorCode, VerificationError

#: Slices per window: the strict rounding costs a refused visitor at most 1/SLICES of a window.
SLICES = 10


#: The public name (a ``RATE_LIMITED`` error's ``limit``) of each internal scope.
PUBLIC_SCOPES = {
    "session": "session",
    "phone": "phone",
    "ip": "address",
    "user": "user",
    "global": "site",
    "account": "site",
}


@dataclass(frozen=True)
class Limit:
    """``count`` sends per ``seconds``, for one value (a phone number, an address...) of a scope."""

    scope: str
    value: str
    count: int
    seconds: int

    @property
    def slice(self) -> int:
        return max(1, math.ceil(self.seconds / SLICES))

    def key(self, index: int) -> str:
        # The slice length is in the key: changing a limit starts its counters afresh.
        return f"verification:rate:{self.scope}:{self.value}:{self.slice}:{index}"

    def indexes(self, now: float) -> range:
        """The slices the span ending at ``now`` touches, oldest first."""
        return range(int((now - self.seconds) // self.slice), int(now // self.slice) + 1)

    def wait(self, counts: list[int], now: float) -> int:
        """Seconds until one more send fits, given the other sends in each slice."""
        indexes = self.indexes(now)
        left = sum(counts)
        for index, count in zip(indexes, counts, strict=True):
            left -= count
            if left < self.count:
                # That slice leaves the span once the span starts after its end.
                return max(1, math.ceil((index + 1) * self.slice + self.seconds - now))
        raise AssertionError("a send that fits was refused")


def _count(key: str, timeout: int) -> int:
    """Add one to the counter ``key`` (created with ``timeout``); its new value."""
    cache.add(key, 0, timeout=timeout)
    try:
        return cache.incr(key)
    except ValueError:
        # Evicted between add and incr.
        if cache.add(key, 1, timeout=timeout):
            return 1
        return cache.incr(key)


def _give_back(key: str) -> None:
    # A counter that expired meanwhile has nothing to give back.
    with contextlib.suppress(ValueError):
        cache.decr(key)


def limits_take(*, limits: list[Limit], now: float) -> list[str]:
    """Count one send against every limit; raise RATE_LIMITED (counting nothing) when any is full.

    Returns the counters taken, for :func:`limits_release` when the send does not happen.
    """
    taken: list[tuple[Limit, str, int]] = []
    for limit in limits:
        key = limit.key(limit.indexes(now)[-1])
        taken.append((limit, key, _count(key, limit.seconds + limit.slice + 1)))
    older = {limit: [limit.key(i) for i in limit.indexes(now)[:-1]] for limit, _, _ in taken}
    counts = cache.get_many([key for keys in older.values() for key in keys])
    waits: list[tuple[int, str]] = []
    for limit, _, current in taken:
        slices = [int(counts.get(key) or 0) for key in older[limit]] + [current]
        if sum(slices) > limit.count:
            # Judged without this send, which is given back.
            slices[-1] -= 1
            waits.append((limit.wait(slices, now), PUBLIC_SCOPES.get(limit.scope, "site")))
    keys = [key for _, key, _ in taken]
    if waits:
        limits_release(keys=keys)
        # The visitor is told of the limit that holds them longest.
        wait, scope = max(waits)
        raise VerificationError(ErrorCode.RATE_LIMITED, retry_after=wait, limit=scope)
    return keys


def limits_release(*, keys: list[str]) -> None:
    """Give back sends counted by :func:`limits_take` that did not happen."""
    for key in keys:
        _give_back(key)


def limits_used(*, limit: Limit, now: float) -> int:
    """The sends ``limit`` has counted in the span ending at ``now`` (nothing is counted)."""
    counts = cache.get_many([limit.key(index) for index in limit.indexes(now)])
    return sum(int(count or 0) for count in counts.values())


def limits_count(*, limits: list[Limit], now: float) -> None:
    """Count one send against every limit without judging it (for thresholds, not caps)."""
    for limit in limits:
        _count(limit.key(limit.indexes(now)[-1]), limit.seconds + limit.slice + 1)
