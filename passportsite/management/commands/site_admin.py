"""Make sure a development admin account exists and say how to reach the admin."""

from __future__ import annotations

import secrets
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create a development superuser (DEBUG only) and print how to reach the admin."

    def add_arguments(self, parser: Any) -> None:
        parser.add_argument("--url", default="http://127.0.0.1:8000")

    def handle(self, *args: Any, **options: Any) -> None:
        url = options["url"].rstrip("/")
        users = get_user_model()
        password_file = settings.BASE_DIR / "var" / "admin-password.txt"
        if settings.DEBUG and not users.objects.filter(is_superuser=True).exists():
            password = secrets.token_urlsafe(12)
            users.objects.create_superuser("admin", "admin@example.com", password)
            password_file.parent.mkdir(parents=True, exist_ok=True)
            password_file.write_text(password + "\n")
            password_file.chmod(0o600)
        self.stdout.write(f"Site:  {url}/")
        if settings.DEBUG and settings.VERIFICATION.get("EMBEDDED_SANDBOX"):
            self.stdout.write(
                f"Sandbox inbox: {url}/sandbox/  (try +999 66 2 1234 with the code 22222)"
            )
        if password_file.exists():
            password = password_file.read_text().strip()
            self.stdout.write(f"Admin: {url}/admin/  (user admin, password {password})")
        else:
            self.stdout.write(
                f"Admin: {url}/admin/  (create a user with `manage.py createsuperuser`)"
            )
