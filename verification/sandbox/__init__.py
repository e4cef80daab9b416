"""A local MTProto server that the unmodified Telethon client talks to over TCP.

It implements the auth key exchange, MTProto 2.0 encryption and service messages, and the
handful of API methods phone verification and sender sign-in need, with Telegram's semantics
and error codes. See docs/sandbox.md.
"""

from __future__ import annotations

from .codes import DeliveredCode
from .server import SandboxServer
from .thread import SandboxThread

__all__ = ["DeliveredCode", "SandboxServer", "SandboxThread"]
