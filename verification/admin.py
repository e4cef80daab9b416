from __future__ import annotations

import csv
import secrets
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path
from django.utils import timezone
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import engine, runtime, services
from .errors import MESSAGES, ErrorCode
from .forms import SenderCodeForm, SenderPasswordForm, SenderPhoneForm
from .models import PhoneVerification, SenderAccount, VerificationEvent
from .selectors import verification_summary
from .worker import worker_login

CONNECT_SESSION_KEY = "verification_sender_connect"


@admin.register(SenderAccount)
class SenderAccountAdmin(admin.ModelAdmin):
    list_display = [
        "__str__",
        "phone_number",
        "is_active",
        "is_sandbox",
        "connected_to_worker",
        "last_used_at",
        "last_error",
    ]
    list_filter = ["is_active", "is_sandbox"]
    search_fields = ["phone_number", "label", "display_name"]
    # The session is the account's login: it is never shown or edited here.
    fields = [
        "label",
        "phone_number",
        "display_name",
        "telegram_user_id",
        "is_active",
        "is_sandbox",
        "last_error",
        "last_used_at",
        "created_at",
    ]
    readonly_fields = [
        "phone_number",
        "display_name",
        "telegram_user_id",
        "is_sandbox",
        "last_error",
        "last_used_at",
        "created_at",
    ]
    actions = ["activate", "deactivate"]
    change_list_template = "admin/verification/senderaccount/change_list.html"

    def has_add_permission(self, request: HttpRequest) -> bool:
        # Accounts are connected by signing in (the "Connect" page or manage.py telegram_login).
        return False

    def get_urls(self) -> list[Any]:
        connect = self.admin_site.admin_view(self.connect_view)
        return [
            path("connect/", connect, name="verification_senderaccount_connect"),
            *super().get_urls(),
        ]

    def connect_view(self, request: HttpRequest) -> HttpResponse:
        """Sign a Telegram account in as a sender: phone, code, then 2FA password if asked."""
        if not self.has_change_permission(request):
            raise PermissionDenied
        state = request.session.get(CONNECT_SESSION_KEY) or {}
        step = state.get("step", "phone")
        if request.method == "POST" and "restart" in request.POST:
            if state:
                async_to_sync(_login_step)("abort", state)
            request.session.pop(CONNECT_SESSION_KEY, None)
            return redirect("admin:verification_senderaccount_connect")
        form_class = {
            "phone": SenderPhoneForm,
            "code": SenderCodeForm,
            "password": SenderPasswordForm,
        }[step]
        form = form_class(request.POST or None)
        if request.method == "POST" and form.is_valid():
            if step == "phone":
                state = {"login_id": secrets.token_hex(12), "worker": "", **form.cleaned_data}
                answer = async_to_sync(_login_step)("send_code", state)
            elif step == "code":
                answer = async_to_sync(_login_step)(
                    "sign_in", state, code=form.cleaned_data["code"]
                )
            else:
                answer = async_to_sync(_login_step)(
                    "password", state, password=form.cleaned_data["password"]
                )
            if "error" in answer:
                form.add_error(None, MESSAGES[ErrorCode(answer["error"])])
            elif answer["step"] == "done":
                request.session.pop(CONNECT_SESSION_KEY, None)
                self.message_user(request, _("The sender account is connected."), messages.SUCCESS)
                return redirect("admin:verification_senderaccount_changelist")
            else:
                state.update(step=answer["step"], worker=answer["worker"])
                request.session[CONNECT_SESSION_KEY] = state
                return redirect("admin:verification_senderaccount_connect")
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Connect a sender account"),
            "form": form,
            "step": step,
            "phone_number": state.get("phone_number", ""),
        }
        return TemplateResponse(request, "admin/verification/senderaccount/connect.html", context)

    @admin.display(boolean=True, description=_("held by a worker"))
    def connected_to_worker(self, account: SenderAccount) -> bool:
        expires = account.lease_expires_at
        return bool(account.lease_owner and expires and expires > timezone.now())

    @admin.action(description=_("Send codes from the selected accounts"))
    def activate(self, request: HttpRequest, queryset: QuerySet[SenderAccount]) -> None:
        queryset.update(is_active=True, last_error="")

    @admin.action(description=_("Stop sending codes from the selected accounts"))
    def deactivate(self, request: HttpRequest, queryset: QuerySet[SenderAccount]) -> None:
        queryset.update(is_active=False)


class VerificationEventInline(admin.TabularInline):
    model = VerificationEvent
    fields = ["created_at", "kind", "actor", "staff_user", "data"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    verbose_name_plural = _("timeline")

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(PhoneVerification)
class PhoneVerificationAdmin(admin.ModelAdmin):
    list_display = [
        "phone_number",
        "status",
        "code_type",
        "attempts",
        "resends",
        "last_error",
        "user",
        "review_status",
        "created_at",
    ]
    list_filter = ["status", "review_status", "code_type", "last_error", "region", "created_at"]
    search_fields = ["phone_number", "user__username", "user__email", "id"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "id",
        "phone_number",
        "region",
        "user",
        "sender_account",
        "status",
        "code_type",
        "code_length",
        "next_type",
        "sent_at",
        "resend_at",
        "expires_at",
        "flood_until",
        "attempts",
        "resends",
        "last_error",
        "ip_address",
        "created_at",
        "finished_at",
        "reviewed_by",
        "reviewed_at",
    ]
    fields = [*readonly_fields, "review_status", "review_note"]
    inlines = [VerificationEventInline]
    actions = ["approve", "reject", "cancel", "export_csv"]
    change_list_template = "admin/verification/phoneverification/change_list.html"

    def get_urls(self) -> list[Any]:
        summary = self.admin_site.admin_view(self.summary_view)
        return [
            path("summary/", summary, name="verification_phoneverification_summary"),
            *super().get_urls(),
        ]

    def summary_view(self, request: HttpRequest) -> HttpResponse:
        """Conversion over the last 1, 7 or 30 days: statuses, code types, errors."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        days = request.GET.get("days", "7")
        days = int(days) if days in {"1", "7", "30"} else 7
        since = timezone.now() - timedelta(days=days)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Verification summary"),
            "days": days,
            "summary": verification_summary(since=since),
            "statuses": PhoneVerification.Status,
        }
        return TemplateResponse(
            request, "admin/verification/phoneverification/summary.html", context
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def save_model(
        self, request: HttpRequest, obj: PhoneVerification, form: Any, change: Any
    ) -> None:
        if "review_status" in form.changed_data or "review_note" in form.changed_data:
            services.verification_review(
                verification=obj,
                status=obj.review_status,
                staff_user=request.user,
                note=obj.review_note,
            )

    def _review(self, request: HttpRequest, queryset: QuerySet, status: str) -> None:
        for verification in queryset:
            services.verification_review(
                verification=verification, status=status, staff_user=request.user
            )
        count = queryset.count()
        self.message_user(
            request,
            ngettext("%d verification reviewed.", "%d verifications reviewed.", count) % count,
        )

    @admin.action(description=_("Approve selected verifications"))
    def approve(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._review(request, queryset, PhoneVerification.Review.APPROVED)

    @admin.action(description=_("Reject selected verifications"))
    def reject(self, request: HttpRequest, queryset: QuerySet) -> None:
        self._review(request, queryset, PhoneVerification.Review.REJECTED)

    @admin.action(description=_("Cancel selected verifications in progress"))
    def cancel(self, request: HttpRequest, queryset: QuerySet) -> None:
        done = 0
        for verification in queryset.filter(status__in=PhoneVerification.ACTIVE_STATUSES):
            verification = services.verification_cancel(
                verification=verification,
                actor=VerificationEvent.Actor.STAFF,
                staff_user=request.user,
            )
            async_to_sync(engine.announce_cancelled)(verification)
            done += 1
        self.message_user(
            request,
            ngettext("%d verification cancelled.", "%d verifications cancelled.", done) % done,
            messages.SUCCESS,
        )

    @admin.action(description=_("Export selected verifications as CSV"))
    def export_csv(self, request: HttpRequest, queryset: QuerySet) -> HttpResponse:
        response = HttpResponse(content_type="text/csv")
        response["Content-Disposition"] = 'attachment; filename="verifications.csv"'
        writer = csv.writer(response)
        columns = [
            "id",
            "phone_number",
            "region",
            "status",
            "code_type",
            "attempts",
            "resends",
            "last_error",
            "review_status",
            "created_at",
            "finished_at",
        ]
        writer.writerow(columns)
        for row in queryset.values_list(*columns):
            writer.writerow(row)
        return response


async def _login_step(action: str, state: dict[str, Any], **data: Any) -> dict[str, Any]:
    await runtime.ensure_started()
    phone = {"phone_number": state["phone_number"]} if action == "send_code" else {}
    return await worker_login(action, state["login_id"], worker=state["worker"], **phone, **data)
