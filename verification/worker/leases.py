"""Sender-account leases: one process at a time uses an auth key, and never past its lease.

Telegram kills an auth key used from two places at once (``AUTH_KEY_DUPLICATED``). A worker
holds a lease on each account whose client it runs. The keeper renews the leases on its own
schedule, opens clients for new leases concurrently and with a timeout, and fences: an account
whose lease was not renewed is closed ``margin`` seconds before the lease can lapse, and no call
starts, or runs, past that point. Another worker only takes an account over once the lease has
lapsed, so the two never overlap.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from django.utils import timezone

from .. import services
from ..crypto import is_undecryptable
from ..db import db
from ..errors import ErrorCode
from ..gateway import GatewayError, TelegramGateway
from ..gateway.base import AccountUnusable
from ..models import SenderAccount

logger = logging.getLogger("verification.worker")

T = TypeVar("T")


class LeaseLost(GatewayError):
    """This worker no longer holds the account's lease (or is about to lose it)."""

    def __init__(self) -> None:
        super().__init__(ErrorCode.TELEGRAM_UNAVAILABLE, telegram_error="LEASE_LOST")


class LeaseKeeper:
    def __init__(
        self, *, owner: str, gateway: TelegramGateway, lease_seconds: float, open_timeout: float
    ) -> None:
        self.owner = owner
        self.gateway = gateway
        self.lease_seconds = lease_seconds
        self.open_timeout = open_timeout
        # Stop using an account this long before its lease could lapse.
        self.margin = max(0.5, lease_seconds / 5)
        # Account id -> time.time() after which it must not be used.
        self._fences: dict[int, float] = {}
        self._opening: dict[int, asyncio.Task[None]] = {}
        self._used: dict[int, datetime] = {}
        self._lock = asyncio.Lock()

    @property
    def held(self) -> set[int]:
        """Accounts this worker may use now (leased, client open, fence ahead)."""
        now = time.time()
        return {
            account_id
            for account_id, fence in self._fences.items()
            if fence > now and self.gateway.is_open(account_id)
        }

    def remaining(self, account_id: int) -> float:
        """Seconds this worker may still use ``account_id``; raise LeaseLost if none."""
        fence = self._fences.get(account_id)
        left = (fence - time.time()) if fence is not None else 0.0
        if left <= 0 or not self.gateway.is_open(account_id):
            raise LeaseLost()
        return left

    async def call(
        self, account_id: int, deadline: float, function: Callable[..., Awaitable[T]], *args: Any
    ) -> T:
        """``function(account_id, *args)``, given up before the deadline and the fence.

        Giving up cancels the gateway call, which withdraws the request: it is never sent late.
        """
        limit = min(deadline - time.time(), self.remaining(account_id))
        if limit <= 0:
            raise GatewayError(ErrorCode.TELEGRAM_UNAVAILABLE, telegram_error="REQUEST_TIMEOUT")
        self._used[account_id] = timezone.now()
        try:
            async with asyncio.timeout(limit):
                return await function(account_id, *args)
        except TimeoutError:
            raise GatewayError(
                ErrorCode.TELEGRAM_UNAVAILABLE, telegram_error="REQUEST_TIMEOUT"
            ) from None

    async def run(self) -> None:
        """Renew every ``lease_seconds / 3`` and fence in between, until cancelled."""
        interval = max(0.2, self.lease_seconds / 3)
        next_renewal = 0.0
        while True:
            now = time.monotonic()
            if now >= next_renewal:
                try:
                    await self.renew()
                except asyncio.CancelledError:
                    raise
                except Exception:
                    # The fences below close every client before its lease can lapse.
                    logger.exception("Renewing sender-account leases failed")
                next_renewal = now + interval
            await self.fence()
            # Often enough to close a client within the margin, whenever its fence falls.
            await asyncio.sleep(min(0.5, interval, self.margin / 2))

    async def renew(self, *, wait_for_clients: bool = False) -> None:
        """Take and renew leases; open clients for new ones, close the ones lost.

        Clients open in their own tasks, so a slow connect never delays the next renewal;
        ``wait_for_clients`` waits for them (a worker's first renewal, before it is ready).
        """
        async with self._lock:
            # Counted from before the write: the lease in the database ends later than this.
            fence_base = time.time() + self.lease_seconds - self.margin
            used, self._used = self._used, {}
            try:
                held = await db(services.sender_account_leases_renew)(owner=self.owner, used=used)
            except BaseException:
                # Kept for the next renewal (newer uses win).
                self._used = {**used, **self._used}
                raise
            held_ids = {account.pk for account in held}
            for account_id in set(self._fences) - held_ids:
                await self._close(account_id, "its lease was taken")
            for account in held:
                self._fences[account.pk] = fence_base
                if not self.gateway.is_open(account.pk) and account.pk not in self._opening:
                    self._opening[account.pk] = asyncio.create_task(self._open(account))
        opening = list(self._opening.values())
        if wait_for_clients and opening:
            await asyncio.gather(*opening, return_exceptions=True)

    async def fence(self) -> None:
        """Close every client whose lease was not renewed in time."""
        now = time.time()
        for account_id, fence in list(self._fences.items()):
            if fence <= now:
                await self._close(account_id, "its lease was not renewed in time")

    async def _open(self, account: SenderAccount) -> None:
        if is_undecryptable(account.session):
            # Logged by the decryption itself with what to do; the session is kept as it is.
            await self._release(account.pk, "SESSION_UNDECRYPTABLE")
            self._opening.pop(account.pk, None)
            return
        try:
            async with asyncio.timeout(min(self.open_timeout, self.remaining_lease(account.pk))):
                await self.gateway.open(account.pk, account.session)
        except AccountUnusable as exc:
            logger.warning("Sender account %s cannot be used: %s", account, exc.telegram_error)
            self._fences.pop(account.pk, None)
            await db(services.sender_account_mark_dead)(
                account_id=account.pk, error=exc.telegram_error
            )
        except (GatewayError, TimeoutError) as exc:
            error = exc.telegram_error if isinstance(exc, GatewayError) else "CONNECT_TIMEOUT"
            logger.warning("Sender account %s cannot connect: %s", account, error)
            await self._release(account.pk, error)
        except Exception:
            logger.exception("Opening sender account %s failed", account)
            await self._release(account.pk, "INTERNAL")
        else:
            if account.pk not in self._fences:
                # Lost while connecting.
                await self.gateway.close(account.pk)
            else:
                logger.info("Sender account %s connected", account)
        finally:
            self._opening.pop(account.pk, None)

    def remaining_lease(self, account_id: int) -> float:
        return max(0.0, self._fences.get(account_id, 0.0) - time.time())

    async def _close(self, account_id: int, why: str) -> None:
        self._fences.pop(account_id, None)
        task = self._opening.pop(account_id, None)
        if task is not None:
            task.cancel()
        if self.gateway.is_open(account_id):
            logger.warning("Closing sender account %s: %s", account_id, why)
        await self.gateway.close(account_id)

    async def _release(self, account_id: int, error: str) -> None:
        self._fences.pop(account_id, None)
        await self.gateway.close(account_id)
        await db(services.sender_account_release)(
            owner=self.owner, account_id=account_id, error=error
        )

    async def release_all(self) -> None:
        """Close every client and give the leases back (a clean stop)."""
        for task in list(self._opening.values()):
            task.cancel()
        for account_id in list(self._fences):
            self._fences.pop(account_id, None)
            await self.gateway.close(account_id)
        await db(services.sender_account_release)(owner=self.owner)

    def forget(self, account_id: int) -> None:
        """Stop using an account (it was marked dead)."""
        self._fences.pop(account_id, None)
