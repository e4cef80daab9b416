from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError

from verification import passport


class Command(BaseCommand):
    help = (
        "Make an RSA key pair for the Telegram Passport bot: writes the private key (the "
        "PASSPORT_PRIVATE_KEY setting) and prints the public key to give @BotFather with "
        "/setpublickey."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--private-key-file",
            default="passport-private-key.pem",
            help="Where to write the private key (passport-private-key.pem); readable by you only.",
        )
        parser.add_argument("--force", action="store_true", help="Replace an existing file.")

    def handle(self, *args: Any, **options: Any) -> None:
        path = Path(options["private_key_file"])
        if path.exists() and not options["force"]:
            raise CommandError(
                f"{path} exists; use --force to replace it (the old key stops working)."
            )
        key = passport.private_key_generate()
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(descriptor, "w") as file:
            file.write(passport.private_key_pem(key))
        self.stderr.write(
            f"Private key written to {path}. Set VERIFICATION['PASSPORT_PRIVATE_KEY'] to that "
            "path (or its contents), then send @BotFather /setpublickey, choose your bot and "
            "paste this public key:\n"
        )
        self.stdout.write(passport.public_key_pem(key))
