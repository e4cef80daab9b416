"""The worker process's loop, and :func:`serve`, which restarts it when it dies.

Consumers reach a worker through the channel layer. Each worker has its own channel and holds
leases on the sender accounts whose clients it runs; a verification's requests go to the worker
holding its sender account's lease. Results go back to every tab of the owning browser session.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any

from channels.layers import BaseChannelLayer, get_channel_layer

from ..app_settings import get_config
from ..gateway import TelegramGateway, gateway_from_settings
from . import sweeper
from .client import LOGIN_CHANNEL
from .handlers import Handlers
from .leases import LeaseKeeper
from .locks import KeyedLock
from .passport import PassportReceiver

logger = logging.getLogger("verification.worker")


class TelegramWorker:
    def __init__(
        self,
        *,
        channel_layer: BaseChannelLayer | None = None,
        gateway: TelegramGateway | None = None,
        before_first_lease: Callable[[TelegramWorker], Awaitable[None]] | None = None,
    ) -> None:
        config = get_config()
        self.layer = channel_layer or get_channel_layer(config["CHANNEL_LAYER"])
        self.gateway = gateway or gateway_from_settings()
        self.lease_seconds: int = config["LEASE_SECONDS"]
        self.request_timeout: float = config["REQUEST_TIMEOUT"]
        self.channel = ""
        self.ready = asyncio.Event()
        self.locks = KeyedLock()
        self.leases: LeaseKeeper | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._before_first_lease = before_first_lease

    @property
    def held(self) -> set[int]:
        """Ids of the sender accounts this worker can send from now."""
        return self.leases.held if self.leases is not None else set()

    async def run(self) -> None:
        """Serve until cancelled; raises when a part of the worker fails for good."""
        self.channel = await self.layer.new_channel("verification.worker.")
        leases = self.leases = LeaseKeeper(
            owner=self.channel,
            gateway=self.gateway,
            lease_seconds=self.lease_seconds,
            open_timeout=self.request_timeout,
        )
        self.handlers = Handlers(gateway=self.gateway, leases=leases, layer=self.layer)
        loops: list[asyncio.Task[Any]] = []
        try:
            await leases.renew(wait_for_clients=True)
            if self._before_first_lease is not None:
                await self._before_first_lease(self)
                await leases.renew(wait_for_clients=True)
            loops = [
                asyncio.create_task(leases.run()),
                asyncio.create_task(sweeper.run(max(1.0, min(5.0, self.lease_seconds / 3)))),
                asyncio.create_task(self._receive(self.channel)),
                asyncio.create_task(self._receive(LOGIN_CHANNEL)),
                asyncio.create_task(
                    PassportReceiver(
                        owner=self.channel, gateway=self.gateway, lease_seconds=self.lease_seconds
                    ).run()
                ),
            ]
            self.ready.set()
            done, _ = await asyncio.wait(loops, return_when=asyncio.FIRST_EXCEPTION)
            for task in done:
                task.result()
        finally:
            for task in [*loops, *self._tasks]:
                task.cancel()
            await asyncio.gather(*loops, *self._tasks, return_exceptions=True)
            try:
                await leases.release_all()
            except Exception:
                logger.exception("Releasing sender-account leases failed")
            await self.gateway.close_all()

    async def _receive(self, channel: str) -> None:
        delay = 0.2
        while True:
            try:
                message = await self.layer.receive(channel)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                # A channel-layer blip (Redis restarting): wait and listen again.
                logger.warning(
                    "Receiving on %s failed (%r); retrying in %.1f s", channel, exc, delay
                )
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
                continue
            delay = 0.2
            self._spawn(self._dispatch(message))

    def _spawn(self, coroutine: Awaitable[Any]) -> None:
        task = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _dispatch(self, message: dict[str, Any]) -> None:
        kind = message.get("type", "")
        if kind == "telegram.login":
            await self.handlers.login(message, on_done=lambda: self._spawn(self._renew_now()))
            return
        handler = self.handlers.for_kind(kind)
        if handler is None:
            logger.warning("Unknown worker message %r", kind)
            return
        # One request per browser session at a time: a resend never overlaps a verify, and
        # the sends of a replaced and a replacing verification never overtake each other
        # (a newer code for a number makes Telegram drop the older one).
        async with self.locks(message.get("owner") or message["verification"]):
            try:
                await handler(message)
            except Exception:
                logger.exception("Worker failed on %s", kind)
                try:
                    await self.handlers.failed(message)
                except Exception:
                    logger.exception("Answering a failed %s failed too", kind)

    async def _renew_now(self) -> None:
        if self.leases is not None:
            await self.leases.renew(wait_for_clients=True)


async def serve(
    make_worker: Callable[[], TelegramWorker],
    *,
    on_ready: Callable[[TelegramWorker], Any] | None = None,
    max_delay: float = 30.0,
) -> None:
    """Run workers until cancelled, starting a new one with backoff whenever one dies."""
    delay = 0.5
    while True:
        worker = make_worker()
        ready = asyncio.ensure_future(worker.ready.wait())
        task = asyncio.ensure_future(worker.run())
        try:
            await asyncio.wait({ready, task}, return_when=asyncio.FIRST_COMPLETED)
            if worker.ready.is_set():
                delay = 0.5
                if on_ready is not None:
                    on_ready(worker)
            await task
            logger.error("The Telegram worker stopped; starting a new one in %.1f s", delay)
        except asyncio.CancelledError:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            raise
        except Exception:
            logger.exception("The Telegram worker failed; starting a new one in %.1f s", delay)
        finally:
            ready.cancel()
        await asyncio.sleep(delay)
        delay = min(delay * 2, max_delay)
