from __future__ import annotations

from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import reverse
from django.views.decorators.http import require_GET

from . import runtime
from .app_settings import get_config
from .consumers import session_owner
from .forms import test_numbers_allowed


def _start_runtime(request: HttpRequest) -> None:
    """Under ASGI, start the embedded worker (and sandbox) with the first page view, so the
    sandbox sender account is connected before the visitor asks for a code."""
    if isinstance(request, ASGIRequest) and get_config()["EMBEDDED_WORKER"]:
        async_to_sync(runtime.ensure_started)()


def _sandbox_inbox_available() -> bool:
    return bool(settings.DEBUG and get_config()["EMBEDDED_SANDBOX"])


@require_GET
def verify(request: HttpRequest) -> HttpResponse:
    """The visitor's page. Loading it gives the browser the session its socket acts for."""
    config = get_config()
    if config["REQUIRE_LOGIN"] and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    session_owner(request.session)
    _start_runtime(request)
    context: dict[str, Any] = {
        "websocket_path": "/ws/verification/",
        "sandbox_inbox_url": reverse("verification:sandbox_inbox")
        if _sandbox_inbox_available()
        else None,
        "test_numbers": test_numbers_allowed(),
        "max_attempts": config["MAX_ATTEMPTS"],
    }
    return render(request, "verification/verify.html", context)


@require_GET
def sandbox_inbox(request: HttpRequest) -> HttpResponse:
    """Every code the embedded sandbox delivered (DEBUG only)."""
    if not _sandbox_inbox_available():
        raise Http404
    _start_runtime(request)
    return render(
        request,
        "verification/sandbox_inbox.html",
        {"codes_url": reverse("verification:sandbox_codes")},
    )


@require_GET
def sandbox_codes(request: HttpRequest) -> JsonResponse:
    if not _sandbox_inbox_available():
        raise Http404
    try:
        after = int(request.GET.get("after", "0"))
    except ValueError:
        after = 0
    embedded = runtime.current()
    inbox = embedded.sandbox.inbox if embedded and embedded.sandbox else []
    codes = [
        {
            "n": n,
            "phone": item.phone,
            "code": item.code,
            "purpose": item.purpose,
            "code_type": item.code_type,
            "sent_at": item.sent_at.isoformat(),
            "prefix": item.prefix,
            "url": item.url,
        }
        for n, item in enumerate(inbox, start=1)
        if n > after
    ]
    return JsonResponse({"codes": codes, "last": len(inbox)})
