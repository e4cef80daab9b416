"""What web processes need to reach a Telegram worker (imported without the worker itself)."""

from __future__ import annotations

import asyncio
from typing import Any

from channels.layers import BaseChannelLayer, get_channel_layer
from django.utils import timezone

from ..app_settings import get_config
from ..errors import ErrorCode
from ..models import PhoneVerification

#: Every worker listens here for the first step of a sender-account sign-in.
LOGIN_CHANNEL = "verification.logins"


def worker_channel(verification: PhoneVerification) -> str:
    """The channel of the live worker holding ``verification``'s sender account, or ""."""
    account = verification.sender_account
    if account is None or not account.lease_owner:
        return ""
    if account.lease_expires_at is None or account.lease_expires_at <= timezone.now():
        # Its worker stopped renewing: a message sent there would never be answered.
        return ""
    return account.lease_owner


async def worker_login(
    action: str,
    login_id: str,
    *,
    worker: str = "",
    layer: BaseChannelLayer | None = None,
    **data: Any,
) -> dict[str, Any]:
    """One step of signing a sender account in (or out), done by a Telegram worker.

    The first step (``send_code``) goes to any worker; later steps go to the ``worker`` named in
    the first answer, because it holds the half-signed-in client. ``log_out`` (with
    ``account=<id>``) goes to any worker and ends that account's Telegram session. Returns the
    worker's answer: ``{"step": "code" | "password" | "done" | "aborted" | "logged_out",
    "worker": ...}`` or ``{"error": code}``.
    """
    config = get_config()
    layer = layer or get_channel_layer(config["CHANNEL_LAYER"])
    reply_channel = await layer.new_channel("verification.login-reply.")
    await layer.send(
        worker or LOGIN_CHANNEL,
        {
            "type": "telegram.login",
            "action": action,
            "login_id": login_id,
            "reply_channel": reply_channel,
            **data,
        },
    )
    try:
        async with asyncio.timeout(config["REQUEST_TIMEOUT"] + 5):
            return await layer.receive(reply_channel)
    except TimeoutError:
        return {"error": ErrorCode.TELEGRAM_UNAVAILABLE.value}
