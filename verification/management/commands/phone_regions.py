from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from verification.phone_regions import PATH, phone_regions_json


class Command(BaseCommand):
    help = (
        "Write the phone number field's formatting data (static/verification/phone_regions.json) "
        "from the installed phonenumbers' metadata."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument(
            "--check", action="store_true", help="Only report whether the file is up to date."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        text = phone_regions_json()
        current = PATH.read_text() if PATH.exists() else ""
        if options["check"]:
            if current != text:
                raise CommandError(f"{PATH} is out of date: run manage.py phone_regions.")
            self.stdout.write(f"{PATH} is up to date.")
            return
        PATH.write_text(text)
        self.stdout.write(f"Wrote {PATH} ({len(text.encode())} bytes).")
