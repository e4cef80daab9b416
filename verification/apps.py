from __future__ import annotations

from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class VerificationConfig(AppConfig):
    name = "verification"
    verbose_name = _("Phone verification")
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        # Registers the system checks, the owner rotation on sign-in and sign-out, and the
        # Gateway API transport's runner.
        from . import checks, gateway_requests, owners  # noqa: F401
