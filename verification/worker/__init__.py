"""The Telegram worker: owns the Telethon clients and runs every Telegram call.

- :mod:`.client` — what web processes import to reach a worker;
- :mod:`.core` — :class:`TelegramWorker` and :func:`serve`, which restarts it;
- :mod:`.handlers` — one handler per request kind;
- :mod:`.leases` — sender-account leases with fencing;
- :mod:`.locks` — a lock per verification;
- :mod:`.sweeper` — expiry and sends nobody answered.
"""

from __future__ import annotations

from typing import Any

from .client import LOGIN_CHANNEL, worker_channel, worker_login

__all__ = ["LOGIN_CHANNEL", "TelegramWorker", "serve", "worker_channel", "worker_login"]


def __getattr__(name: str) -> Any:
    # The worker itself imports the engine, which imports .client: load it on demand.
    if name in {"TelegramWorker", "serve"}:
        from . import core

        return getattr(core, name)
    raise AttributeError(name)
