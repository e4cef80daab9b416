"""``manage.py telegram_sandbox``: run the local Telegram (MTProto) sandbox, and with
``--gateway-port`` the Gateway API sandbox beside it, until Ctrl-C."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandParser

from verification.sandbox import SandboxServer
from verification.sandbox.gateway_api import DEFAULT_TOKEN, GatewaySandbox

DEFAULT_PORT = 9999
DEFAULT_PUBLIC_KEY_FILE = "telegram-sandbox.pem"


class Command(BaseCommand):
    help = (
        "Run the local Telegram sandbox: an MTProto server the unmodified Telethon client talks "
        "to. Prints its address, writes its RSA public key and logs every code it delivers."
    )
    # The sandbox is the server the site's settings point at, not a user of them: the site's
    # checks would refuse to start it because the key file it is about to write is missing
    # (verification.E023).
    requires_system_checks: list[str] = []

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--host", default="127.0.0.1", help="Address to bind (127.0.0.1).")
        parser.add_argument(
            "--port",
            type=int,
            default=DEFAULT_PORT,
            help=f"TCP port ({DEFAULT_PORT}; 0 picks a free one).",
        )
        parser.add_argument(
            "--public-key-file",
            default=DEFAULT_PUBLIC_KEY_FILE,
            help=f"Where to write the RSA public key PEM ({DEFAULT_PUBLIC_KEY_FILE}).",
        )
        parser.add_argument(
            "--resend-timeout",
            type=float,
            default=60.0,
            help="Seconds clients must wait before auth.resendCode (the sent code's timeout).",
        )
        parser.add_argument(
            "--code-lifetime", type=float, default=600.0, help="Seconds a code stays valid."
        )
        parser.add_argument(
            "--gateway-port",
            type=int,
            default=None,
            help="Also serve the Gateway API over HTTP on this port (0 picks a free one).",
        )
        parser.add_argument(
            "--gateway-token",
            default=DEFAULT_TOKEN,
            help=f"Token the Gateway API sandbox accepts and signs reports with ({DEFAULT_TOKEN}).",
        )
        parser.add_argument(
            "--state-file",
            default=None,
            help="JSON file keeping the RSA key, auth keys and sign-ins across restarts.",
        )

    def handle(self, *args: Any, **options: Any) -> None:
        # Codes are printed through the "verification.sandbox" logger; make sure they show up
        # even when the project's LOGGING config does not route that logger anywhere.
        logger = logging.getLogger("verification.sandbox")
        if not logger.handlers:
            handler = logging.StreamHandler(self.stdout)
            handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%H:%M:%S"))
            logger.addHandler(handler)
            logger.setLevel(logging.INFO)
            logger.propagate = False
        server = SandboxServer(
            options["host"],
            options["port"],
            resend_timeout=options["resend_timeout"],
            code_lifetime=options["code_lifetime"],
            state_file=options["state_file"],
        )
        key_file = Path(options["public_key_file"]).resolve()
        key_file.write_text(server.public_key_pem)
        gateway = None
        if options["gateway_port"] is not None:
            gateway = GatewaySandbox(
                host=options["host"], port=options["gateway_port"], token=options["gateway_token"]
            )
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(self._serve(server, key_file, gateway))
        self.stdout.write("Sandbox stopped.")

    async def _serve(
        self, server: SandboxServer, key_file: Path, gateway: GatewaySandbox | None
    ) -> None:
        await server.start()
        if gateway is not None:
            gateway.start()
        self.stdout.write(
            self.style.SUCCESS(f"Telegram sandbox listening on {server.address}")
            + f"\nPublic key written to {key_file}"
            + "\nPoint the site at it with:"
            + f"\n  TELEGRAM_SERVER={server.address}"
            + f"\n  TELEGRAM_SERVER_PUBLIC_KEY={key_file}"
            + "\nTest numbers: +99966XYYYY gets the code X repeated five times. Ctrl-C to stop."
        )
        if gateway is not None:
            self.stdout.write(
                self.style.SUCCESS(f"Gateway API sandbox listening on {gateway.url}")
                + "\nPoint the site at it with:"
                + f"\n  TELEGRAM_GATEWAY_URL={gateway.url}"
                + f"\n  TELEGRAM_GATEWAY_TOKEN={gateway.token}"
            )
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError, RuntimeError):
                loop.add_signal_handler(signum, stop.set)
        try:
            await stop.wait()
        finally:
            if gateway is not None:
                gateway.stop()
            await server.stop()
