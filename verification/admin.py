from __future__ import annotations

import csv
import secrets
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from asgiref.sync import async_to_sync
from django.contrib import admin, messages
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.utils import unquote
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils import formats, timezone
from django.utils.html import format_html_join
from django.utils.http import urlencode
from django.utils.text import Truncator
from django.utils.translation import gettext_lazy as _
from django.utils.translation import ngettext

from . import engine, runtime, services
from .errors import MESSAGES, ErrorCode
from .forms import (
    SenderCodeForm,
    SenderPasswordForm,
    SenderPhoneForm,
    code_type_label,
    error_label,
    phone_search_term,
)
from .models import PhoneVerification, SenderAccount, VerificationEvent
from .selectors import gateway_balance_low, verification_summary
from .worker import worker_login

CONNECT_SESSION_KEY = "verification_sender_connect"

#: Gateway API delivery statuses as the verification's page shows them.
DELIVERY_LABELS = {
    "sent": _("Sent to Telegram"),
    "delivered": _("Delivered"),
    "read": _("Read"),
    "expired": _("Expired unread"),
    "revoked": _("Revoked"),
}


@admin.register(SenderAccount)
class SenderAccountAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # no __class_getitem__ at runtime
    list_display = [
        "__str__",
        "phone_number",
        "is_active",
        "connected_to_worker",
        "last_used_at",
        "last_error_short",
    ]
    # Whether an account is the sandbox's is a filter and on its page: the list fits 1280 px.
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
    delete_confirmation_template = "admin/verification/senderaccount/delete_confirmation.html"

    class Media:
        # Where Django's admin styles fall short of WCAG 2.2 AA (the app's own pages link it too).
        css = {"all": ["verification/admin.css"]}

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

    def get_actions(self, request: HttpRequest) -> dict[str, Any]:
        # Deleting goes through each account's page, which logs the account out of Telegram
        # first and says so when Telegram cannot be reached.
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def delete_view(
        self, request: HttpRequest, object_id: str, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        """Log the account out of Telegram, then delete it; if Telegram cannot be reached, say
        so and offer to delete it anyway."""
        confirmed = request.method == "POST" and "post" in request.POST
        if confirmed and "delete_anyway" not in request.POST:
            account = self.get_object(request, unquote(object_id))
            if account is not None and self.has_delete_permission(request, account):
                answer = async_to_sync(_log_out)(account.pk)
                if "error" in answer:
                    self.message_user(
                        request,
                        _("The account could not be logged out of Telegram: %(error)s")
                        % {"error": MESSAGES[ErrorCode(answer["error"])]},
                        messages.ERROR,
                    )
                    return redirect(request.path + "?log_out_failed=1")
        extra_context = {
            **(extra_context or {}),
            "log_out_failed": request.method == "GET" and "log_out_failed" in request.GET,
        }
        return super().delete_view(request, object_id, extra_context)

    @admin.display(description=_("last error"), ordering="last_error")
    def last_error_short(self, account: SenderAccount) -> str:
        # Telegram's errors can be long; the full text is on the account's page.
        return Truncator(account.last_error).chars(30)

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


def _when(value: Any) -> str:
    """A moment to the second, in the current time zone (events often come seconds apart)."""
    if value is None:
        return ""
    local = timezone.localtime(value)
    return f"{formats.date_format(local, 'SHORT_DATE_FORMAT')} {local:%H:%M:%S}"


# How each detail of an event is named and shown; other keys are shown as they are.
DETAIL_NAMES = {
    "type": _("code type"),
    "code_type": _("code type"),
    "next_type": _("next type"),
    "error": _("error"),
    "retry_after": _("retry after (s)"),
    "length": _("code length"),
    "timeout": _("resend after (s)"),
    "telegram_error": _("Telegram error"),
    "attempts_left": _("attempts left"),
    "review": _("review"),
    "note": _("note"),
    "phone_number": _("phone number"),
    "sender_account": _("sender account"),
    "reason": _("reason"),
}
DETAIL_VALUES: dict[str, Callable[[Any], str]] = {
    "type": code_type_label,
    "code_type": code_type_label,
    "next_type": code_type_label,
    "error": error_label,
    "review": lambda value: (
        str(PhoneVerification.Review(value).label)
        if value in PhoneVerification.Review.values
        else value
    ),
}


def _details(data: Any) -> str:
    if not isinstance(data, dict) or not data:
        return ""
    rows = (
        (DETAIL_NAMES.get(key, key), DETAIL_VALUES.get(key, str)(value))
        for key, value in data.items()
        if value not in (None, "")
    )
    return format_html_join("", "<div><strong>{}</strong>: {}</div>", rows)


class VerificationEventInline(admin.TabularInline):  # type: ignore[type-arg]  # no __class_getitem__ at runtime
    model = VerificationEvent
    fields = readonly_fields = ("when", "kind", "actor", "staff_user", "details")
    extra = 0
    can_delete = False
    verbose_name_plural = _("timeline")
    template = "admin/verification/phoneverification/timeline.html"

    def has_add_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    @admin.display(description=_("when"), ordering="created_at")
    def when(self, event: VerificationEvent) -> str:
        return _when(event.created_at)

    @admin.display(description=_("details"))
    def details(self, event: VerificationEvent) -> str:
        return _details(event.data)


class ValueFilter(admin.SimpleListFilter):
    """A filter over the values present in one column, each named by `label`."""

    field = ""
    empty_label = _("None")

    def label(self, value: str) -> str:
        return value

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        values = (
            model_admin.get_queryset(request)
            .order_by(self.field)
            .values_list(self.field, flat=True)
            .distinct()
        )
        return [(value, self.label(value) if value else str(self.empty_label)) for value in values]

    def queryset(self, request: HttpRequest, queryset: QuerySet[Any]) -> QuerySet[Any]:
        if self.value() is None:
            return queryset
        return queryset.filter(**{self.field: self.value()})


class CodeTypeFilter(ValueFilter):
    title = _("code type")
    parameter_name = field = "code_type"
    empty_label = _("No code sent")

    def label(self, value: str) -> str:
        return code_type_label(value)


class LastErrorFilter(ValueFilter):
    title = _("last error")
    parameter_name = field = "last_error"
    empty_label = _("No error")

    def label(self, value: str) -> str:
        return error_label(value)


class RegionFilter(ValueFilter):
    title = _("by region")
    parameter_name = field = "region"
    empty_label = _("No region (test numbers)")


@admin.register(PhoneVerification)
class PhoneVerificationAdmin(admin.ModelAdmin):  # type: ignore[type-arg]  # no __class_getitem__ at runtime
    # Chosen to fit 1280 px beside the admin's navigation and the filters (about 630 px); the rest
    # is on each verification's page.
    list_display = [
        "number",
        "status",
        "sent_as",
        "last_error_label",
        "review_status",
        "created_at",
    ]
    list_filter = [
        "status",
        "method",
        "transport",
        "review_status",
        CodeTypeFilter,
        LastErrorFilter,
        RegionFilter,
        "created_at",
    ]
    search_fields = ["phone_number", "user__username", "user__email", "id"]
    date_hierarchy = "created_at"
    readonly_fields = [
        "id",
        "phone_number",
        "region",
        "user",
        "sender_account",
        "status",
        "method",
        "transport",
        "delivery_label",
        "code_type_label",
        "code_length",
        "next_type_label",
        "sent_at",
        "resend_at",
        "expires_at",
        "flood_until",
        "attempts",
        "resends",
        "last_error_label",
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

    class Media:
        # Where Django's admin styles fall short of WCAG 2.2 AA (the app's own pages link it too).
        css = {"all": ["verification/admin.css"]}

    def get_urls(self) -> list[Any]:
        summary = self.admin_site.admin_view(self.summary_view)
        return [
            path("summary/", summary, name="verification_phoneverification_summary"),
            *super().get_urls(),
        ]

    def changelist_view(
        self, request: HttpRequest, extra_context: dict[str, Any] | None = None
    ) -> HttpResponse:
        self._warn_low_balance(request)
        return super().changelist_view(request, extra_context)

    def _warn_low_balance(self, request: HttpRequest) -> None:
        low = gateway_balance_low()
        if low is not None:
            self.message_user(
                request,
                _(
                    "The Telegram Gateway account's balance was %(balance)s on %(when)s, below "
                    "%(threshold)s: top it up at gateway.telegram.org before codes stop going out."
                )
                % {
                    "balance": formats.number_format(low["balance"], 2),
                    "when": formats.date_format(
                        timezone.localtime(low["at"]), "SHORT_DATETIME_FORMAT"
                    ),
                    "threshold": formats.number_format(low["threshold"], 2),
                },
                messages.WARNING,
            )

    def summary_view(self, request: HttpRequest) -> HttpResponse:
        """Conversion over the last 1, 7 or 30 days: statuses, code types, errors, Gateway spend."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        self._warn_low_balance(request)
        chosen = request.GET.get("days", "7")
        days = int(chosen) if chosen in {"1", "7", "30"} else 7
        since = timezone.now() - timedelta(days=days)
        summary = verification_summary(since=since)
        changelist = reverse("admin:verification_phoneverification_changelist")
        period = {"created_at__gte": timezone.localtime(since).isoformat(timespec="seconds")}

        def link(**filters: str) -> str:
            return f"{changelist}?{urlencode({**period, **filters})}"

        context = {
            **self.admin_site.each_context(request),
            "opts": self.model._meta,
            "title": _("Verification summary"),
            "days": days,
            "periods": [(1, _("last day")), (7, _("last 7 days")), (30, _("last 30 days"))],
            "summary": summary,
            "started_url": link(),
            "statuses": [
                (label, summary["by_status"].get(value, 0), link(status=value))
                for value, label in PhoneVerification.Status.choices
            ],
            "methods": [
                {
                    **row,
                    "label": PhoneVerification.Method(row["method"]).label,
                    "url": link(method=row["method"]),
                }
                for row in summary["by_method"]
            ],
            "transports": [
                {
                    **row,
                    "label": PhoneVerification.Transport(row["transport"]).label,
                    "url": link(method=PhoneVerification.Method.CODE, transport=row["transport"]),
                }
                for row in summary["by_transport"]
            ],
            "code_types": [
                {
                    **row,
                    "label": code_type_label(row["code_type"]) if row["code_type"] != "—" else "—",
                    "url": link(code_type=row["code_type"] if row["code_type"] != "—" else ""),
                }
                for row in summary["by_code_type"]
            ],
            "errors": [
                (error_label(code), code, count, link(last_error=code))
                for code, count in summary["errors"]
            ],
        }
        return TemplateResponse(
            request, "admin/verification/phoneverification/summary.html", context
        )

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        # An audit record: verifications leave by the retention command, never one by one.
        return False

    def get_search_results(
        self, request: HttpRequest, queryset: QuerySet[PhoneVerification], search_term: str
    ) -> tuple[QuerySet[PhoneVerification], bool]:
        # A number as staff read it ("+999 66 2 9005") is one number, not four words.
        number = phone_search_term(search_term)
        if number is not None:
            return queryset.filter(phone_number__startswith=number), False
        return super().get_search_results(request, queryset, search_term)

    @admin.display(description=_("phone number"), ordering="phone_number")
    def number(self, verification: PhoneVerification) -> str:
        """The number, or what stands for it while a Passport share has not brought one."""
        return verification.phone_number or str(_("no number yet"))

    @admin.display(description=_("sent as"), ordering="code_type")
    def sent_as(self, verification: PhoneVerification) -> str:
        """How the number is verified: Telegram Passport, or the code's type and its transport."""
        if verification.method == PhoneVerification.Method.PASSPORT:
            return verification.get_method_display()
        kind = code_type_label(verification.code_type)
        transport = verification.get_transport_display()
        return f"{kind} · {transport}" if kind else transport

    @admin.display(description=_("code type"), ordering="code_type")
    def code_type_label(self, verification: PhoneVerification) -> str:
        return code_type_label(verification.code_type)

    @admin.display(description=_("delivery"))
    def delivery_label(self, verification: PhoneVerification) -> str:
        """The last status the Gateway API reported for the verification's message."""
        return str(DELIVERY_LABELS.get(verification.delivery, verification.delivery or "—"))

    @admin.display(description=_("next type"))
    def next_type_label(self, verification: PhoneVerification) -> str:
        return code_type_label(verification.next_type)

    @admin.display(description=_("last error"), ordering="last_error")
    def last_error_label(self, verification: PhoneVerification) -> str:
        return error_label(verification.last_error)

    def _warn_unverified_approvals(self, request: HttpRequest, count: int) -> None:
        if count:
            self.message_user(
                request,
                ngettext(
                    "%d approved verification did not verify its number.",
                    "%d approved verifications did not verify their numbers.",
                    count,
                )
                % count,
                messages.WARNING,
            )

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
            approved = obj.review_status == PhoneVerification.Review.APPROVED
            self._warn_unverified_approvals(
                request, int(approved and obj.status != PhoneVerification.Status.VERIFIED)
            )

    def _review(
        self, request: HttpRequest, queryset: QuerySet[PhoneVerification], status: str, action: str
    ) -> HttpResponse | None:
        """First a confirmation page (with a note for all, and a warning about verifications
        that did not verify), then the review itself."""
        unverified = queryset.exclude(status=PhoneVerification.Status.VERIFIED)
        if "apply" not in request.POST:
            context = {
                **self.admin_site.each_context(request),
                "opts": self.model._meta,
                "title": _("Approve verifications")
                if status == PhoneVerification.Review.APPROVED
                else _("Reject verifications"),
                "approving": status == PhoneVerification.Review.APPROVED,
                "action": action,
                "verifications": queryset,
                "unverified": unverified.count(),
                "action_checkbox_name": ACTION_CHECKBOX_NAME,
            }
            return TemplateResponse(
                request, "admin/verification/phoneverification/review.html", context
            )
        note = request.POST.get("review_note", "").strip() or None
        count = 0
        for verification in queryset:
            services.verification_review(
                verification=verification, status=status, staff_user=request.user, note=note
            )
            count += 1
        self.message_user(
            request,
            ngettext("%d verification reviewed.", "%d verifications reviewed.", count) % count,
            messages.SUCCESS,
        )
        if status == PhoneVerification.Review.APPROVED:
            self._warn_unverified_approvals(request, unverified.count())
        return None

    @admin.action(description=_("Approve selected verifications"))
    def approve(
        self, request: HttpRequest, queryset: QuerySet[PhoneVerification]
    ) -> HttpResponse | None:
        return self._review(request, queryset, PhoneVerification.Review.APPROVED, "approve")

    @admin.action(description=_("Reject selected verifications"))
    def reject(
        self, request: HttpRequest, queryset: QuerySet[PhoneVerification]
    ) -> HttpResponse | None:
        return self._review(request, queryset, PhoneVerification.Review.REJECTED, "reject")

    @admin.action(description=_("Cancel selected verifications in progress"))
    def cancel(self, request: HttpRequest, queryset: QuerySet[PhoneVerification]) -> None:
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
    def export_csv(
        self, request: HttpRequest, queryset: QuerySet[PhoneVerification]
    ) -> HttpResponse:
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


async def _log_out(account_id: int) -> dict[str, Any]:
    await runtime.ensure_started()
    return await worker_login("log_out", secrets.token_hex(12), account=account_id)


async def _login_step(action: str, state: dict[str, Any], **data: Any) -> dict[str, Any]:
    await runtime.ensure_started()
    phone = {"phone_number": state["phone_number"]} if action == "send_code" else {}
    return await worker_login(action, state["login_id"], worker=state["worker"], **phone, **data)
