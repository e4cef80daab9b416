"""The Telegram Passport bot in a worker: one client, held under a lease like a sender account.

The bot is the one client that receives updates. Only the worker holding the bot's lease runs
it (two clients on one bot would each get the updates), renews the lease every third of
``LEASE_SECONDS`` and closes the client before the lease could lapse when it cannot renew.
What the bot receives goes to :func:`verification.engine.passport_receive`; nothing it
receives can stop the worker.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from .. import engine, passport_services
from ..db import db
from ..gateway import GatewayError, TelegramGateway
from ..passport import SharedPassport, passport_bot

logger = logging.getLogger("verification.worker")


class PassportReceiver:
    def __init__(self, *, owner: str, gateway: TelegramGateway, lease_seconds: float) -> None:
        self.owner = owner
        self.gateway = gateway
        self.lease_seconds = lease_seconds
        self.margin = max(0.5, lease_seconds / 5)
        self._fence = 0.0
        self._token = ""
        self._tasks: set[asyncio.Task[None]] = set()

    async def run(self) -> None:
        """Hold the bot (when Passport is on) until cancelled."""
        interval = max(0.2, self.lease_seconds / 3)
        try:
            while True:
                try:
                    await self._renew()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    logger.exception("Holding the Passport bot failed")
                deadline = time.monotonic() + interval
                while time.monotonic() < deadline:
                    if self.gateway.bot_is_open() and time.time() >= self._fence:
                        logger.warning("Closing the Passport bot: its lease was not renewed")
                        await self.gateway.bot_close()
                    await asyncio.sleep(min(0.5, interval))
        finally:
            await self.gateway.bot_close()
            for task in self._tasks:
                task.cancel()
            try:
                await db(passport_services.passport_bot_release)(owner=self.owner)
            except Exception:
                logger.exception("Releasing the Passport bot failed")

    async def _renew(self) -> None:
        bot = passport_bot()
        if bot is None:
            if self.gateway.bot_is_open():
                await self.gateway.bot_close()
            return
        fence = time.time() + self.lease_seconds - self.margin
        held = await db(passport_services.passport_bot_lease)(
            owner=self.owner, token=bot.token, bot_id=bot.bot_id
        )
        if held is None:
            if self.gateway.bot_is_open():
                await self.gateway.bot_close()
            return
        self._fence = fence
        if self.gateway.bot_is_open() and self._token == bot.token:
            return
        await self.gateway.bot_close()
        try:
            async with asyncio.timeout(max(1.0, fence - time.time())):
                session = await self.gateway.bot_open(bot.token, held.session, self._received)
        except (GatewayError, TimeoutError) as exc:
            error = getattr(exc, "telegram_error", "") or "CONNECT_TIMEOUT"
            logger.warning("The Passport bot cannot sign in: %s", error)
            await db(passport_services.passport_bot_signed_in)(
                bot_pk=held.pk, session="", error=error
            )
            return
        self._token = bot.token
        await db(passport_services.passport_bot_signed_in)(bot_pk=held.pk, session=session)
        logger.info("The Passport bot %s is receiving", bot.bot_id)

    async def _received(self, shared: SharedPassport) -> None:
        # Telethon's update loop awaits handlers: the work runs in a task of its own.
        task = asyncio.ensure_future(self._handle(shared))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _handle(self, shared: Any) -> None:
        try:
            await engine.passport_receive(shared)
        except Exception:
            logger.exception("Handling received Passport data failed")
