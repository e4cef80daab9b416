"""How async code reaches the ORM: one hop per step, on threads that keep their connections.

Every step of a verification (start, code sent, attempt, result, expiry …) is one synchronous,
transactional function in :mod:`verification.services`, run here with :func:`db`. The threads
belong to this module, not to asgiref's shared executor:

- On SQLite there is one database thread per process. SQLite has one writer; with several
  threads the writers only wait on each other's file lock, sleeping in the busy handler. One
  thread turns that contention into a queue.
- On other databases (PostgreSQL) a small pool of threads works in parallel; each thread keeps
  its connection (Django's psycopg pool, or persistent connections), so no step opens one.

Like Channels' ``database_sync_to_async``, connections that are broken or past ``CONN_MAX_AGE``
are closed around each call.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from django.db import close_old_connections, connections

P = ParamSpec("P")
T = TypeVar("T")

#: Threads for databases that allow parallel writers.
PARALLEL_THREADS = 8

_executor: ThreadPoolExecutor | None = None
_executor_lock = threading.Lock()


def _threads() -> int:
    vendor = connections["default"].vendor
    return 1 if vendor == "sqlite" else PARALLEL_THREADS


def executor() -> ThreadPoolExecutor:
    """The process's database threads (created on first use)."""
    global _executor
    if _executor is None:
        with _executor_lock:
            if _executor is None:
                _executor = ThreadPoolExecutor(
                    max_workers=_threads(), thread_name_prefix="verification-db"
                )
    return _executor


def _run(function: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    close_old_connections()
    try:
        return function(*args, **kwargs)
    finally:
        close_old_connections()


def db(function: Callable[P, T]) -> Callable[P, Awaitable[T]]:
    """``await db(services.some_step)(**kwargs)``: run one step on a database thread."""

    @functools.wraps(function)
    async def call(*args: P.args, **kwargs: P.kwargs) -> T:
        context = contextvars.copy_context()
        return await asyncio.get_running_loop().run_in_executor(
            executor(), context.run, functools.partial(_run, function, *args, **kwargs)
        )

    return call
