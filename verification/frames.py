"""Server → client frames of WebSocket protocol v1."""

from __future__ import annotations

from typing import Any

from .errors import ErrorCode, error_message
from .models import PhoneVerification
from .selectors import verification_snapshot


def group_name(owner: str) -> str:
    """The channel-layer group every tab of one browser session joins."""
    return f"verification.{owner}"


def frame(kind: str, verification: PhoneVerification | None = None, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"type": kind}
    data["verification"] = verification_snapshot(verification) if verification else None
    data.update(extra)
    return data


def error_frame(
    code: ErrorCode,
    verification: PhoneVerification | None = None,
    *,
    retry_after: int | None = None,
    limit: str | None = None,
    challenge: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """An error frame. ``message`` is filled in (translated) by the consumer that sends it."""
    data: dict[str, Any] = {
        "type": "error",
        "code": code.value,
        "message": error_message(code, limit),
    }
    if retry_after is not None:
        data["retry_after"] = retry_after
    if limit is not None:
        data["limit"] = limit
    if challenge is not None:
        data["challenge"] = challenge
    if verification is not None:
        data["verification"] = verification_snapshot(verification)
    return data
