from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import models, transaction
from django.db.models import ExpressionWrapper, F, Value

from verification.crypto import DecryptionError, rotate
from verification.models import PhoneVerification, SenderAccount


def _raw(field: str) -> ExpressionWrapper[F]:
    # The column as stored: a plain TextField output skips EncryptedTextField.from_db_value.
    return ExpressionWrapper(F(field), output_field=models.TextField())


class Command(BaseCommand):
    help = (
        "Re-encrypt stored sender sessions and phone_code_hash values with the newest key in "
        "VERIFICATION['ENCRYPTION_KEYS'], so older keys can be removed. Values no configured key "
        "can read are listed and left as they are; the command then fails."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--dry-run", action="store_true", help="Only count.")
        parser.add_argument(
            "--batch-size", type=int, default=500, help="Rows read per query (500)."
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if options["batch_size"] < 1:
            raise CommandError("--batch-size must be at least 1.")
        unreadable: list[str] = []
        sessions = self._rotate_column(
            SenderAccount, "session", unreadable=unreadable, **self._pass_on(options)
        )
        hashes = self._rotate_column(
            PhoneVerification, "phone_code_hash", unreadable=unreadable, **self._pass_on(options)
        )
        for row in unreadable:
            self.stderr.write(f"Unreadable: {row}")
        verb = "Would re-encrypt" if options["dry_run"] else "Re-encrypted"
        self.stdout.write(
            f"{verb} {sessions} sender sessions and {hashes} verification hashes; "
            f"{len(unreadable)} unreadable."
        )
        if unreadable:
            raise CommandError(
                f"{len(unreadable)} stored values cannot be decrypted with any configured key "
                "and were left as they are: add the key they were written with to "
                "VERIFICATION['ENCRYPTION_KEYS'] (after the newest) and run this command again."
            )

    @staticmethod
    def _pass_on(options: dict[str, Any]) -> dict[str, Any]:
        return {"dry_run": options["dry_run"], "batch_size": options["batch_size"]}

    def _rotate_column(
        self,
        model: type[models.Model],
        field: str,
        *,
        unreadable: list[str],
        dry_run: bool,
        batch_size: int,
    ) -> int:
        """Re-encrypt one column; the number of values rewritten (or due, with ``dry_run``)."""
        rows = (
            model._default_manager.exclude(**{field: ""})
            .annotate(stored=_raw(field))
            .order_by("pk")
            .values_list("pk", "stored")
        )
        rewritten = 0
        last_pk: Any = None
        while True:
            batch = list((rows if last_pk is None else rows.filter(pk__gt=last_pk))[:batch_size])
            if not batch:
                return rewritten
            last_pk = batch[-1][0]
            with transaction.atomic():
                for pk, token in batch:
                    try:
                        fresh = rotate(token)
                    except DecryptionError:
                        unreadable.append(f"{model._meta.label} {pk} ({field})")
                        continue
                    if fresh == token:
                        continue
                    if not dry_run:
                        # Only if the row still holds what was read: a value the app wrote
                        # meanwhile is already under the newest key and must not be replaced.
                        written = (
                            model._default_manager.annotate(stored=_raw(field))
                            .filter(pk=pk, stored=token)
                            .update(**{field: Value(fresh, output_field=models.TextField())})
                        )
                        if not written:
                            continue
                    rewritten += 1
