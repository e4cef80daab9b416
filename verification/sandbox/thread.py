"""Run a SandboxServer on its own event loop in a daemon thread (for sync code and tests)."""

from __future__ import annotations

import asyncio
import concurrent.futures
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from .codes import DeliveredCode
from .server import SandboxServer

T = TypeVar("T")


class SandboxThread:
    """A `SandboxServer` served from a background thread.

    Accepts exactly the keyword arguments of `SandboxServer`. The wrappers below hop onto the
    server's loop, so they are safe to call from any thread.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.server = SandboxServer(*args, **kwargs)
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._stopped: asyncio.Event | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> SandboxThread:
        """Start the thread and block until the server is listening."""
        if self._thread is not None:
            raise RuntimeError("SandboxThread already started")
        ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self._thread = threading.Thread(
            target=self._run, args=(ready,), name="telegram-sandbox", daemon=True
        )
        self._thread.start()
        ready.result(timeout=30)
        return self

    def _run(self, ready: concurrent.futures.Future[None]) -> None:
        loop = asyncio.new_event_loop()
        self._loop = loop
        asyncio.set_event_loop(loop)

        async def main() -> None:
            self._stopped = asyncio.Event()
            try:
                await self.server.start()
            except BaseException as exc:
                ready.set_exception(exc)
                return
            ready.set_result(None)
            await self._stopped.wait()
            await self.server.stop()

        try:
            loop.run_until_complete(main())
        finally:
            loop.close()

    def stop(self) -> None:
        """Stop the server and wait for the thread to finish."""
        if self._thread is None or self._loop is None or self._stopped is None:
            return
        if self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(timeout=10)
        self._thread = None

    def __enter__(self) -> SandboxThread:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    # --- plumbing ------------------------------------------------------------------------

    def _on_loop(self, function: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        loop = self._loop
        if loop is None or not loop.is_running():
            return function(*args, **kwargs)
        if threading.current_thread() is self._thread:
            return function(*args, **kwargs)
        future: concurrent.futures.Future[T] = concurrent.futures.Future()

        def run() -> None:
            try:
                future.set_result(function(*args, **kwargs))
            except BaseException as exc:
                future.set_exception(exc)

        loop.call_soon_threadsafe(run)
        return future.result(timeout=30)

    # --- read-only facts -----------------------------------------------------------------

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def port(self) -> int:
        return self.server.port

    @property
    def address(self) -> str:
        return self.server.address

    @property
    def public_key_pem(self) -> str:
        return self.server.public_key_pem

    @property
    def inbox(self) -> list[DeliveredCode]:
        """A copy of every code delivered so far, oldest first."""
        return self._on_loop(lambda: list(self.server.inbox))

    @property
    def stats(self) -> dict[str, int]:
        """A copy of the server's protocol counters (e.g. ``"bad_server_salt"``)."""
        return self._on_loop(lambda: dict(self.server.stats))

    # --- thread-safe wrappers ------------------------------------------------------------

    def last_code(self, phone: str) -> str | None:
        return self._on_loop(self.server.last_code, phone)

    def inject_error(
        self,
        method: str,
        error: str,
        *,
        code: int = 400,
        phone: str | None = None,
        times: int = 1,
    ) -> None:
        self._on_loop(self.server.inject_error, method, error, code=code, phone=phone, times=times)

    def inject_delay(self, method: str, seconds: float, *, times: int = 1) -> None:
        self._on_loop(self.server.inject_delay, method, seconds, times=times)

    def expire_codes(self, phone: str) -> int:
        return self._on_loop(self.server.expire_codes, phone)

    def drop_connections(self) -> None:
        self._on_loop(self.server.drop_connections)

    def add_account(self, phone: str, *, password: str | None = None) -> None:
        self._on_loop(self.server.add_account, phone, password=password)

    def add_bot(self, token: str, *, public_key_pem: str) -> int:
        return self._on_loop(self.server.add_bot, token, public_key_pem=public_key_pem)

    def passport_share(self, phone: str, url: str, *, tampering: Any = None) -> str:
        return self._on_loop(self.server.passport_share, phone, url, tampering=tampering)

    def passport_authorize(self, phone: str, url: str, *, tampering: Any = None) -> str:
        return self._on_loop(self.server.passport_authorize, phone, url, tampering=tampering)

    def passport_summary(self, phone: str, url: str) -> dict[str, object]:
        return self._on_loop(self.server.passport_summary, phone, url)

    def passport_send_phone_code(self, phone: str) -> str:
        return self._on_loop(self.server.passport_send_phone_code, phone)

    def passport_verify_phone(self, phone: str, code: str) -> None:
        self._on_loop(self.server.passport_verify_phone, phone, code)

    def codes_for(self, phone: str) -> list[DeliveredCode]:
        """Every code delivered to ``phone`` (any format), oldest first."""
        wanted = "+" + "".join(c for c in phone if c.isdigit())
        return [c for c in self.inbox if c.phone == wanted]

    def wait_for_code(self, phone: str, *, after: int = 0, timeout: float = 10.0) -> DeliveredCode:
        """Block until ``phone`` has received more than ``after`` codes; return the latest.

        For synchronous tests. In a test running on an event loop use `await_code`, which does
        not block the loop the app under test may need to send the code.
        """
        deadline = time.monotonic() + timeout
        while True:
            codes = self.codes_for(phone)
            if len(codes) > after:
                return codes[-1]
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no code for {phone} within {timeout} s")
            time.sleep(0.02)

    async def await_code(
        self,
        phone: str,
        *,
        after: int = 0,
        timeout: float = 10.0,  # noqa: ASYNC109 - same signature as wait_for_code on purpose
    ) -> DeliveredCode:
        """`wait_for_code` for async tests: polls without blocking the running loop."""
        deadline = time.monotonic() + timeout
        while True:
            codes = self.codes_for(phone)
            if len(codes) > after:
                return codes[-1]
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no code for {phone} within {timeout} s")
            await asyncio.sleep(0.02)

    def subscribe(self, callback: Callable[[DeliveredCode], None]) -> Callable[[], None]:
        """``callback`` runs on the server's thread; the returned unsubscribe is thread-safe."""
        unsubscribe = self._on_loop(self.server.subscribe, callback)
        return lambda: self._on_loop(unsubscribe)
