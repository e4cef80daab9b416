from __future__ import annotations

import uuid
from typing import Any

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _

from .crypto import EncryptedTextField


class SenderAccount(models.Model):
    """A Telegram account the site sends verification codes from."""

    label = models.CharField(_("label"), max_length=100, blank=True)
    phone_number = models.CharField(_("phone number"), max_length=20, unique=True)
    telegram_user_id = models.BigIntegerField(_("Telegram user id"), null=True, blank=True)
    display_name = models.CharField(_("Telegram name"), max_length=200, blank=True)
    # StringSession (dc, address, auth key): whoever holds it is logged in as this account.
    session = EncryptedTextField(_("session"), blank=True, editable=False)
    is_active = models.BooleanField(
        _("active"), default=True, help_text=_("Inactive accounts send no codes.")
    )
    is_sandbox = models.BooleanField(_("sandbox account"), default=False, editable=False)
    # One process at a time may use an auth key (Telegram kills duplicated keys).
    lease_owner = models.CharField(max_length=200, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    flood_until = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.CharField(_("last error"), max_length=200, blank=True, editable=False)
    last_used_at = models.DateTimeField(_("last used"), null=True, blank=True, editable=False)
    created_at = models.DateTimeField(_("connected"), auto_now_add=True)

    class Meta:
        verbose_name = _("sender account")
        verbose_name_plural = _("sender accounts")
        ordering = ["created_at"]

    def __str__(self) -> str:
        return self.label or self.display_name or self.phone_number


class PhoneVerification(models.Model):
    """One attempt by a visitor to prove control of a phone number."""

    class Status(models.TextChoices):
        SENDING = "sending", _("Sending")
        CODE_SENT = "code_sent", _("Code sent")
        VERIFIED = "verified", _("Verified")
        FAILED = "failed", _("Failed")
        EXPIRED = "expired", _("Expired")
        CANCELLED = "cancelled", _("Cancelled")
        # Telegram Passport: the request is open / the shared data arrived and is being checked.
        WAITING = "waiting", _("Waiting for Telegram Passport")
        RECEIVED = "received", _("Passport data received")

    class Method(models.TextChoices):
        CODE = "code", _("Code")
        PASSPORT = "passport", _("Telegram Passport")

    class Review(models.TextChoices):
        UNREVIEWED = "unreviewed", _("Unreviewed")
        APPROVED = "approved", _("Approved")
        REJECTED = "rejected", _("Rejected")

    class Transport(models.TextChoices):
        SENDER = "sender", _("Sender account")
        GATEWAY = "gateway", _("Gateway API")

    ACTIVE_STATUSES = (Status.SENDING, Status.CODE_SENT, Status.WAITING, Status.RECEIVED)

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Stable token kept in the visitor's Django session; survives session-key rotation on login.
    owner = models.CharField(max_length=64, db_index=True, editable=False)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("user"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="phone_verifications",
    )
    phone_number = models.CharField(_("phone number"), max_length=20, db_index=True)
    method = models.CharField(
        _("method"), max_length=8, choices=Method.choices, default=Method.CODE, db_index=True
    )
    # Telegram Passport: the request's single-use nonce (its link carries it).
    passport_nonce = models.CharField(
        max_length=64, null=True, blank=True, unique=True, editable=False
    )
    region = models.CharField(_("region"), max_length=2, blank=True)
    sender_account = models.ForeignKey(
        SenderAccount,
        verbose_name=_("sender account"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="verifications",
    )
    status = models.CharField(
        _("status"), max_length=16, choices=Status.choices, default=Status.SENDING, db_index=True
    )
    transport = models.CharField(
        _("transport"), max_length=8, choices=Transport.choices, default=Transport.SENDER
    )
    # The Gateway API's id of the message last sent (its delivery reports name it).
    gateway_request_id = models.CharField(max_length=64, blank=True, db_index=True, editable=False)
    # The last delivery status the Gateway API reported for that message.
    delivery = models.CharField(_("delivery"), max_length=16, blank=True)
    code_type = models.CharField(_("code type"), max_length=16, blank=True)
    code_length = models.PositiveSmallIntegerField(_("code length"), null=True, blank=True)
    code_pattern = models.CharField(max_length=64, blank=True)
    code_prefix = models.CharField(max_length=32, blank=True)
    code_url = models.URLField(max_length=500, blank=True)
    code_beginning = models.CharField(max_length=64, blank=True)
    next_type = models.CharField(_("next type"), max_length=16, blank=True)
    phone_code_hash = EncryptedTextField(blank=True, editable=False)
    sent_at = models.DateTimeField(_("code sent at"), null=True, blank=True)
    resend_at = models.DateTimeField(_("resend allowed at"), null=True, blank=True)
    expires_at = models.DateTimeField(_("expires at"), null=True, blank=True)
    flood_until = models.DateTimeField(_("flood wait until"), null=True, blank=True)
    attempts = models.PositiveSmallIntegerField(_("wrong codes"), default=0)
    resends = models.PositiveSmallIntegerField(_("resends"), default=0)
    last_error = models.CharField(_("last error"), max_length=40, blank=True)
    ip_address = models.GenericIPAddressField(_("IP address"), null=True, blank=True)
    created_at = models.DateTimeField(_("started"), auto_now_add=True, db_index=True)
    updated_at = models.DateTimeField(_("updated"), auto_now=True)
    finished_at = models.DateTimeField(_("finished"), null=True, blank=True)
    review_status = models.CharField(
        _("review"), max_length=16, choices=Review.choices, default=Review.UNREVIEWED
    )
    reviewed_by = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        verbose_name=_("reviewed by"),
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="+",
    )
    reviewed_at = models.DateTimeField(_("reviewed at"), null=True, blank=True)
    review_note = models.TextField(_("review note"), blank=True)

    class Meta:
        verbose_name = _("phone verification")
        verbose_name_plural = _("phone verifications")
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["owner", "-created_at"])]
        constraints = [
            # Two tabs starting at once must not both get an active verification.
            models.UniqueConstraint(
                fields=["owner"],
                condition=models.Q(status__in=["sending", "code_sent", "waiting", "received"]),
                name="verification_one_active_per_owner",
            )
        ]

    def __str__(self) -> str:
        return f"{self.phone_number} ({self.get_status_display()})"

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE_STATUSES


class VerificationEvent(models.Model):
    """An append-only record of one thing that happened to a verification."""

    class Kind(models.TextChoices):
        STARTED = "started", _("Started")
        CODE_SENT = "code_sent", _("Code sent")
        RESEND_REQUESTED = "resend_requested", _("Resend requested")
        CODE_RESENT = "code_resent", _("Code resent")
        CODE_SUBMITTED = "code_submitted", _("Code submitted")
        CODE_REJECTED = "code_rejected", _("Wrong code")
        VERIFIED = "verified", _("Verified")
        FAILED = "failed", _("Failed")
        ERROR = "error", _("Error")
        EXPIRED = "expired", _("Expired")
        CANCELLED = "cancelled", _("Cancelled")
        REVIEWED = "reviewed", _("Reviewed")
        PASSPORT_RECEIVED = "passport_received", _("Passport data received")
        PASSPORT_REJECTED = "passport_rejected", _("Passport data rejected")
        DELIVERY = "delivery", _("Delivery report")

    class Actor(models.TextChoices):
        VISITOR = "visitor", _("Visitor")
        TELEGRAM = "telegram", _("Telegram")
        SYSTEM = "system", _("System")
        STAFF = "staff", _("Staff")

    verification = models.ForeignKey(
        PhoneVerification, on_delete=models.CASCADE, related_name="events"
    )
    kind = models.CharField(_("event"), max_length=20, choices=Kind.choices)
    actor = models.CharField(_("by"), max_length=10, choices=Actor.choices)
    staff_user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    data = models.JSONField(_("details"), default=dict, blank=True)
    created_at = models.DateTimeField(_("when"), auto_now_add=True, db_index=True)

    class Meta:
        verbose_name = _("verification event")
        verbose_name_plural = _("verification events")
        ordering = ["created_at", "id"]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} ({self.created_at:%Y-%m-%d %H:%M:%S})"

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            raise ValueError("Verification events are append-only.")
        super().save(*args, **kwargs)


class PassportBot(models.Model):
    """The site's Telegram Passport bot, as a Telegram worker holds it (one at a time)."""

    # SHA-256 of the bot token: the row of the configured bot, without storing the token.
    token_digest = models.CharField(max_length=64, unique=True, editable=False)
    bot_id = models.BigIntegerField(_("bot id"), editable=False)
    # StringSession after auth.importBotAuthorization: whoever holds it is the bot.
    session = EncryptedTextField(blank=True, editable=False)
    lease_owner = models.CharField(max_length=200, blank=True, editable=False)
    lease_expires_at = models.DateTimeField(null=True, blank=True, editable=False)
    last_error = models.CharField(_("last error"), max_length=200, blank=True, editable=False)
    signed_in_at = models.DateTimeField(_("signed in"), null=True, blank=True, editable=False)

    class Meta:
        verbose_name = _("Passport bot")
        verbose_name_plural = _("Passport bots")

    def __str__(self) -> str:
        return f"bot {self.bot_id}"
