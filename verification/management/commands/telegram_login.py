from __future__ import annotations

import asyncio
import getpass
import secrets
from typing import Any

from asgiref.sync import sync_to_async
from django.core.management.base import BaseCommand, CommandError

from verification import services
from verification.app_settings import get_config
from verification.forms import parse_phone_number
from verification.gateway import GatewayError, PasswordNeeded, gateway_from_settings


class Command(BaseCommand):
    help = "Connect a Telegram sender account from the terminal: phone, code, 2FA password."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--phone", help="The account's phone number (asked when omitted).")
        parser.add_argument("--label", default="", help="A name for the account in the admin.")

    def handle(self, *args: Any, **options: Any) -> None:
        config = get_config()
        if config["EMBEDDED_SANDBOX"] and not config["TELEGRAM_SERVER"]:
            raise CommandError(
                "The embedded sandbox connects its own sender account when the site starts. "
                "To connect a real account set TELEGRAM_API_ID and TELEGRAM_API_HASH; for a "
                "standalone sandbox set TELEGRAM_SERVER and TELEGRAM_SERVER_PUBLIC_KEY."
            )
        try:
            raw = options["phone"] or input("Phone number of the sender account: ")
        except EOFError:
            raise CommandError("Cancelled: no phone number given.") from None
        try:
            phone, international, _ = parse_phone_number(raw)
        except Exception as exc:
            raise CommandError(f"{raw!r} is not a valid phone number.") from exc
        try:
            account = asyncio.run(self._login(phone, international))
        except (EOFError, KeyboardInterrupt):
            raise CommandError("Cancelled: no sender account was connected.") from None
        if options["label"]:
            account.label = options["label"]
            account.save(update_fields=["label"])
        self.stdout.write(
            self.style.SUCCESS(f"Connected sender account {account} ({international}).")
        )

    async def _login(self, phone: str, international: str) -> Any:
        gateway = gateway_from_settings()
        login_id = secrets.token_hex(8)
        try:
            sent = await gateway.login_send_code(login_id, phone)
            self.stdout.write(f"Telegram sent a code to {international} ({sent.type}).")
            while True:
                code = (await asyncio.to_thread(input, "Code: ")).strip()
                try:
                    result = await gateway.login_sign_in(login_id, code)
                    break
                except PasswordNeeded:
                    result = await self._password(gateway, login_id)
                    break
                except GatewayError as exc:
                    if exc.code.value != "PHONE_CODE_INVALID":
                        raise
                    self.stderr.write("That code is not right; try again.")
        except GatewayError as exc:
            raise CommandError(f"Telegram refused: {exc.telegram_error}") from exc
        finally:
            await gateway.close_all()
        return await sync_to_async(services.sender_account_save)(result=result)

    async def _password(self, gateway: Any, login_id: str) -> Any:
        while True:
            password = await asyncio.to_thread(getpass.getpass, "Two-step verification password: ")
            try:
                return await gateway.login_password(login_id, password)
            except GatewayError as exc:
                if exc.code.value != "PASSWORD_INVALID":
                    raise
                self.stderr.write("That password is not right; try again.")
