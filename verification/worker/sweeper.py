"""Deadlines nobody is watching: expiry, and sends no worker ever answered."""

from __future__ import annotations

import asyncio
import logging

from .. import dispatch, services
from ..db import db
from ..errors import ErrorCode
from ..frames import error_frame, frame

logger = logging.getLogger("verification.worker")


async def sweep() -> None:
    """Expire verifications past their deadline and fail stuck sends; tell their tabs."""
    for verification in await db(services.verification_expire_all_due)():
        await dispatch.push(verification.owner, frame("expired", verification))
    # A send that no worker answered (its worker died holding the request) fails visibly.
    for verification in await db(services.verification_fail_stuck_sends)():
        await dispatch.push(
            verification.owner, error_frame(ErrorCode.TELEGRAM_UNAVAILABLE, verification)
        )


async def run(interval: float) -> None:
    """Sweep every ``interval`` seconds until cancelled."""
    while True:
        try:
            await sweep()
        except asyncio.CancelledError:
            raise
        except Exception:
            logger.exception("Sweeping expired verifications failed")
        await asyncio.sleep(interval)
