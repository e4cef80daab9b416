"""The embedded runtime: the Telegram worker (and, for development, the sandboxes) started inside
the web process on its own event loop, the first time a visitor's socket connects.

With ``EMBEDDED_WORKER`` off nothing runs here: ``manage.py telegram_worker`` processes do the work.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import tempfile
from pathlib import Path
from typing import Any

from . import gateway_requests, passport, services
from .app_settings import get_config
from .db import db
from .gateway import gateway_from_settings
from .worker.core import TelegramWorker, serve

logger = logging.getLogger("verification.runtime")

SANDBOX_SENDER_PHONE = "+9996610000"
#: The embedded sandbox's Passport bot (its key pair is made at each start).
SANDBOX_BOT_TOKEN = "700000001:sandbox-passport-bot"

#: Seconds a page view or socket waits for the first worker before going on without it.
READY_TIMEOUT = 30.0


class EmbeddedRuntime:
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.sandbox: Any = None
        self.gateway_sandbox: Any = None
        self.key_file: Path | None = None
        self.worker: TelegramWorker | None = None
        self.task: asyncio.Task[None] | None = None
        self.started = asyncio.Event()
        self._first_ready = asyncio.Event()
        self._gateway_kwargs: dict[str, Any] = {}

    async def start(self) -> None:
        """Start the sandboxes (if embedded) and the supervised worker; undo it all on failure."""
        try:
            await self._start()
        except BaseException:
            await self.stop()
            raise

    async def _start(self) -> None:
        config = get_config()
        if config["EMBEDDED_SANDBOX"]:
            self.sandbox = await asyncio.to_thread(self._start_sandbox, config)
            # Sandbox accounts live only for this process's sandbox, so a lease left by the
            # previous run (a restart) is stale: take it back now, not when it runs out.
            await db(services.sender_account_release_sandbox)()
            self.key_file = (
                Path(tempfile.gettempdir()) / f"verification-sandbox-{self.sandbox.port}.pem"
            )
            self.key_file.write_text(self.sandbox.public_key_pem)
            self._gateway_kwargs = {
                "server": self.sandbox.address,
                "public_key_file": str(self.key_file),
            }
            if not config["PASSPORT_BOT_TOKEN"]:
                await asyncio.to_thread(self._register_sandbox_bot)
        if config["EMBEDDED_GATEWAY_SANDBOX"]:
            self.gateway_sandbox = await asyncio.to_thread(self._start_gateway_sandbox)
            gateway_requests.embedded_sandbox_set(
                (self.gateway_sandbox.url, self.gateway_sandbox.token)
            )
        # A fresh context: the runtime may be started from inside a request (admin) whose
        # sync_to_async executor dies with the request; the worker must not inherit it.
        self.task = self.loop.create_task(
            serve(self._make_worker, on_ready=self._on_ready), context=contextvars.Context()
        )
        try:
            async with asyncio.timeout(READY_TIMEOUT):
                await self._first_ready.wait()
        except TimeoutError:
            # The supervisor keeps trying; visitors are told Telegram is unavailable meanwhile.
            logger.error("The embedded Telegram worker is not ready yet; still trying")

    def _make_worker(self) -> TelegramWorker:
        hook = self._connect_sandbox_sender if self.sandbox is not None else None
        gateway = gateway_from_settings(**self._gateway_kwargs)
        return TelegramWorker(gateway=gateway, before_first_lease=hook)

    def _on_ready(self, worker: TelegramWorker) -> None:
        self.worker = worker
        self._first_ready.set()

    @staticmethod
    def _start_sandbox(config: dict[str, Any]) -> Any:
        from .sandbox import SandboxThread

        state_file = config["SANDBOX_STATE_FILE"] or None
        if state_file:
            Path(state_file).parent.mkdir(parents=True, exist_ok=True)
        sandbox = SandboxThread(
            host="127.0.0.1",
            port=0,
            resend_timeout=config["SANDBOX_RESEND_TIMEOUT"],
            code_lifetime=config["SANDBOX_CODE_LIFETIME"],
            state_file=state_file,
        )
        sandbox.start()
        logger.info("Telegram sandbox listening on %s", sandbox.address)
        return sandbox

    @staticmethod
    def _start_gateway_sandbox() -> Any:
        from .sandbox.gateway_api import GatewaySandbox

        return GatewaySandbox(host="127.0.0.1", port=0).start()

    def _register_sandbox_bot(self) -> None:
        """Passport against the sandbox: a bot with a fresh key pair, as BotFather would keep."""
        bot = passport.PassportBot(SANDBOX_BOT_TOKEN, passport.private_key_generate())
        self.sandbox.add_bot(bot.token, public_key_pem=bot.public_key)
        passport.embedded_bot_set(bot)

    async def _connect_sandbox_sender(self, worker: TelegramWorker) -> None:
        """Sign a sandbox account in as the sender, unless a working one is connected."""
        if worker.held:
            return
        gateway = worker.gateway
        login_id = "embedded-sandbox-sender"
        await gateway.login_send_code(login_id, SANDBOX_SENDER_PHONE)
        code = self.sandbox.last_code(SANDBOX_SENDER_PHONE)
        result = await gateway.login_sign_in(login_id, code)
        await db(services.sender_account_save)(result=result, is_sandbox=True)
        logger.info("Connected sandbox sender account %s", SANDBOX_SENDER_PHONE)

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
            self.task = None
        if self.sandbox is not None:
            passport.embedded_bot_set(None)
            await asyncio.to_thread(self.sandbox.stop)
            self.sandbox = None
        if self.key_file is not None:
            self.key_file.unlink(missing_ok=True)
            self.key_file = None
        if self.gateway_sandbox is not None:
            gateway_requests.embedded_sandbox_set(None)
            await asyncio.to_thread(self.gateway_sandbox.stop)
            self.gateway_sandbox = None


_runtime: EmbeddedRuntime | None = None
_starting: asyncio.Lock | None = None


async def ensure_started() -> EmbeddedRuntime | None:
    """Start the embedded runtime on the running loop once; None when it is switched off."""
    global _runtime, _starting
    if not get_config()["EMBEDDED_WORKER"]:
        return None
    loop = asyncio.get_running_loop()
    if _runtime is not None and _runtime.loop is loop:
        await _runtime.started.wait()
        return _runtime
    if _starting is None or getattr(_starting, "_verification_loop", None) is not loop:
        _starting = asyncio.Lock()
        _starting._verification_loop = loop  # type: ignore[attr-defined]
    async with _starting:
        if _runtime is not None and _runtime.loop is loop:
            return _runtime
        runtime = EmbeddedRuntime()
        # A failed start has undone itself; the next page view or socket tries again.
        await runtime.start()
        runtime.started.set()
        _runtime = runtime
        return runtime


def current() -> EmbeddedRuntime | None:
    return _runtime


async def shutdown() -> None:
    """Stop the embedded runtime (tests, and process exit)."""
    global _runtime
    runtime, _runtime = _runtime, None
    if runtime is not None:
        await runtime.stop()
