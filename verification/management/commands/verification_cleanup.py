from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from verification import services
from verification.models import PhoneVerification


class Command(BaseCommand):
    help = (
        "Expire verifications past their deadline and delete finished ones older than --days "
        "(with their events)."
    )

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--days", type=int, default=90, help="Keep this many days (90).")
        parser.add_argument("--dry-run", action="store_true", help="Only count.")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["days"] < 0:
            raise CommandError("--days cannot be negative.")
        before = timezone.now() - timedelta(days=options["days"])
        old = PhoneVerification.objects.filter(created_at__lt=before).exclude(
            status__in=PhoneVerification.ACTIVE_STATUSES
        )
        if options["dry_run"]:
            due = PhoneVerification.objects.filter(
                status__in=PhoneVerification.ACTIVE_STATUSES, expires_at__lte=timezone.now()
            ).count()
            self.stdout.write(f"Would expire {due} and delete {old.count()} verifications.")
            return
        expired = len(services.verification_expire_all_due())
        deleted = services.verification_purge(before=before)
        self.stdout.write(f"Expired {expired} and deleted {deleted} rows.")
