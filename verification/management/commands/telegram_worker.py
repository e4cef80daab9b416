from __future__ import annotations

import asyncio
import contextlib
import signal
from typing import Any

from django.core.management.base import BaseCommand

from verification.worker import TelegramWorker, serve


class Command(BaseCommand):
    help = (
        "Run a Telegram worker: it leases sender accounts, keeps their Telethon clients connected "
        "and performs the Telegram calls that web processes ask for over the channel layer. "
        "Use with a shared channel layer (Redis) and EMBEDDED_WORKER off. A worker that fails "
        "(a database or Redis outage) is started again with backoff."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        async def main() -> None:
            def ready(worker: TelegramWorker) -> None:
                self.stdout.write(f"Telegram worker {worker.channel} ready; Ctrl-C to stop.")
                self.stdout.flush()

            task = asyncio.create_task(serve(TelegramWorker, on_ready=ready))
            # SIGTERM (systemd, containers) stops the worker like Ctrl-C: its leases are
            # released, so another worker takes its accounts over at once.
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
            with contextlib.suppress(asyncio.CancelledError):
                await task
            self.stdout.write("Telegram worker stopped.")

        try:
            asyncio.run(main())
        except KeyboardInterrupt:
            self.stdout.write("Telegram worker stopped.")
