"""The owner token: which verifications a browser session, and the sockets it opened, act on.

The token lives in the Django session. Signing in or out gives the session a new one (Django's
``user_logged_in`` and ``user_logged_out``), so a socket opened before (with the old session, by
anyone who held its cookie) cannot act on, or watch, what the signed-in user starts. The old token
is revoked: its sockets are told to close through their group, and every socket checks its token
before it acts, in case that message is still on its way.
"""

from __future__ import annotations

import secrets
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth.signals import user_logged_in, user_logged_out
from django.core.cache import cache
from django.dispatch import receiver

from .app_settings import get_config
from .frames import group_name

OWNER_SESSION_KEY = "verification_owner"

#: The group message that closes every socket of a revoked owner.
REVOKED_EVENT = "verification.revoked"


def session_owner(session: Any) -> str:
    """The verification owner token kept in a Django session, created on first use."""
    owner = session.get(OWNER_SESSION_KEY)
    if not owner:
        owner = secrets.token_hex(16)
        session[OWNER_SESSION_KEY] = owner
        session.save()
    return owner


def _revoked_key(owner: str) -> str:
    return f"verification:revoked:{owner}"


def owner_revoke(owner: str) -> None:
    """End ``owner``: its sockets close, and none of them can act any more."""
    # Kept as long as a session lives: no socket of that session outlasts it.
    cache.set(_revoked_key(owner), 1, timeout=settings.SESSION_COOKIE_AGE)
    layer = get_channel_layer(get_config()["CHANNEL_LAYER"])
    if layer is not None:
        async_to_sync(layer.group_send)(group_name(owner), {"type": REVOKED_EVENT})


async def owner_revoked(owner: str) -> bool:
    """Whether ``owner`` was revoked (one cache read)."""
    return bool(owner) and await cache.aget(_revoked_key(owner)) is not None


def session_owner_rotate(session: Any) -> None:
    """Give ``session`` a new owner token, revoking the one it had."""
    old = session.get(OWNER_SESSION_KEY)
    session[OWNER_SESSION_KEY] = secrets.token_hex(16)
    if old:
        owner_revoke(old)


@receiver(user_logged_in, dispatch_uid="verification.owner.logged_in")
def _rotate_on_login(sender: Any, request: Any, **kwargs: Any) -> None:
    if request is not None and hasattr(request, "session"):
        session_owner_rotate(request.session)


@receiver(user_logged_out, dispatch_uid="verification.owner.logged_out")
def _revoke_on_logout(sender: Any, request: Any, **kwargs: Any) -> None:
    # Django flushes the session next; the page gives it a new token on the next view.
    session = getattr(request, "session", None)
    if session is not None and (owner := session.get(OWNER_SESSION_KEY)):
        owner_revoke(owner)
