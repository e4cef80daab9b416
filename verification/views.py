from __future__ import annotations

import hmac
import json
import math
import time
from typing import Any

from asgiref.sync import async_to_sync
from django.conf import settings
from django.contrib.auth.views import redirect_to_login
from django.core.cache import cache
from django.core.handlers.asgi import ASGIRequest
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.middleware.csrf import get_token
from django.shortcuts import render
from django.urls import reverse
from django.utils import timezone
from django.utils.module_loading import import_string
from django.utils.translation import gettext_lazy as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from . import dispatch, passport, runtime, selectors, services
from .addresses import address_bucket, request_address
from .app_settings import get_config
from .db import db
from .errors import VerificationError
from .forms import picker_regions, test_numbers_allowed
from .frames import frame
from .gateway.telegram_gateway import DELIVERY_STATUSES, report_signature
from .limits import Limit, limits_take
from .owners import OWNER_SESSION_KEY, session_owner


def _start_runtime(request: HttpRequest) -> None:
    """Under ASGI, start the embedded worker (and sandbox) with the first page view, so the
    sandbox sender account is connected before the visitor asks for a code."""
    if isinstance(request, ASGIRequest) and get_config()["EMBEDDED_WORKER"]:
        async_to_sync(runtime.ensure_started)()


def _sandbox_inbox_available() -> bool:
    config = get_config()
    return bool(
        settings.DEBUG and (config["EMBEDDED_SANDBOX"] or config["EMBEDDED_GATEWAY_SANDBOX"])
    )


@require_GET
def verify(request: HttpRequest) -> HttpResponse:
    """The visitor's page. Loading it writes no session: the page asks :func:`session_start`
    for one when the visitor first acts (a crawler's or an attacker's GETs leave no rows)."""
    config = get_config()
    if config["REQUIRE_LOGIN"] and not request.user.is_authenticated:
        return redirect_to_login(request.get_full_path())
    # Reading loads the session the cookie names; an unknown or expired one leaves no key.
    request.session.get(OWNER_SESSION_KEY)
    get_token(request)  # the CSRF cookie, a cookie only: no session row
    _start_runtime(request)
    context: dict[str, Any] = {
        "websocket_path": "/ws/verification/",
        # With a session the page connects at once (a reload resumes); without, it first asks
        # session_url for one. The page's POST carries the CSRF cookie's token.
        "has_session": request.session.session_key is not None,
        "session_url": reverse("verification:session"),
        # The module the page imports to solve a challenge, when one arrives.
        "challenge_script": import_string(config["CHALLENGE"]).script,
        "sandbox_inbox_url": reverse("verification:sandbox_inbox")
        if _sandbox_inbox_available()
        else None,
        "test_numbers": test_numbers_allowed(),
        "phone_picker": picker_regions(),
        "max_attempts": config["MAX_ATTEMPTS"],
        # After _start_runtime: the embedded sandbox registers its bot as it starts.
        "passport": passport.passport_bot() is not None,
    }
    return render(request, "verification/verify.html", context)


#: The page shows this when its address started more sessions than ``NEW_SESSIONS_LIMIT``.
NEW_SESSIONS_REFUSED = _("Too many new visits from your network. Please wait a while.")


@require_POST
def session_start(request: HttpRequest) -> JsonResponse:
    """The page's first act: give the browser the session its socket acts for (CSRF-protected).

    A browser that has a session keeps it (200, ``created`` false). A new session is counted
    against ``NEW_SESSIONS_LIMIT`` per client address (IPv6 per /64); over it the answer is 429
    with ``retry_after`` and a ``Retry-After`` header, and no session is written.
    """
    if request.session.get(OWNER_SESSION_KEY) and request.session.session_key is not None:
        return JsonResponse({"created": False})
    if request.session.session_key is None:
        limit = get_config()["NEW_SESSIONS_LIMIT"]
        bucket = address_bucket(request_address(request))
        if limit is not None and bucket:
            try:
                limits_take(limits=[Limit("new-session", bucket, *limit)], now=time.time())
            except VerificationError as refused:
                response = JsonResponse(
                    {
                        "code": refused.code.value,
                        "message": str(NEW_SESSIONS_REFUSED),
                        "retry_after": refused.retry_after,
                    },
                    status=429,
                )
                response["Retry-After"] = str(refused.retry_after)
                return response
    session_owner(request.session)
    return JsonResponse({"created": True})


@require_GET
def sandbox_inbox(request: HttpRequest) -> HttpResponse:
    """Every code the embedded sandbox delivered (DEBUG only)."""
    if not _sandbox_inbox_available():
        raise Http404
    _start_runtime(request)
    get_token(request)  # the inbox's Passport "Share" posts carry the CSRF cookie's token
    return render(
        request,
        "verification/sandbox_inbox.html",
        {
            "codes_url": reverse("verification:sandbox_codes"),
            "passport_url": reverse("verification:sandbox_passport"),
            "passport_phone": SANDBOX_PASSPORT_PHONE,
        },
    )


def _sandbox_inbox(embedded: runtime.EmbeddedRuntime | None) -> list[Any]:
    """What the embedded sandboxes delivered, MTProto codes and Gateway messages, oldest first."""
    if embedded is None:
        return []
    delivered = list(embedded.sandbox.inbox) if embedded.sandbox else []
    sent = list(embedded.gateway_sandbox.inbox) if embedded.gateway_sandbox else []
    return sorted([*delivered, *sent], key=lambda item: item.sent_at)


@require_GET
def sandbox_codes(request: HttpRequest) -> JsonResponse:
    """The codes the embedded sandboxes delivered after number ``after`` (DEBUG only). A
    Gateway message shown here is reported ``read``, as when the visitor opens it."""
    if not _sandbox_inbox_available():
        raise Http404
    try:
        after = int(request.GET.get("after", "0"))
    except ValueError:
        after = 0
    embedded = runtime.current()
    inbox = _sandbox_inbox(embedded)
    if embedded is not None and embedded.gateway_sandbox is not None:
        for item in inbox[max(after, 0) :]:
            if item.purpose == "gateway":
                embedded.gateway_sandbox.mark_read(item.request_id)
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


#: The number the inbox's simulated Telegram app shares unless told another.
SANDBOX_PASSPORT_PHONE = "+999 66 3 1234"


def _sandbox_passport_url(verification_id: str) -> str | None:
    bot = passport.passport_bot()
    if bot is None:
        return None
    for waiting in selectors.passport_requests_waiting():
        if str(waiting.pk) == verification_id:
            return passport.request_url(
                bot_id=bot.bot_id, public_key=bot.public_key, nonce=waiting.passport_nonce or ""
            )
    return None


#: The answers the inbox's simulated Telegram app can give to a Passport request.
_SANDBOX_PASSPORT_ACTIONS = ("share", "authorize", "decline", "send_code", "verify_phone")


@require_http_methods(["GET", "POST"])
def sandbox_passport(request: HttpRequest) -> JsonResponse:
    """DEBUG only: the inbox's simulated Telegram app.

    GET lists the open Telegram Passport requests, each with the authorization form ``phone``'s
    app shows (the bot, what it asks for, the phone the Passport holds). POST ``id``, ``phone``
    and ``action`` answers one: ``share`` (the shortcut: verify if needed, then authorize),
    ``send_code`` and ``verify_phone`` (``code``) put the number in the Passport, ``authorize``
    sends it to the bot as ``account.acceptAuthorization`` does, ``decline`` sends nothing.
    """
    embedded = runtime.current()
    if not _sandbox_inbox_available() or embedded is None or embedded.sandbox is None:
        raise Http404
    from .sandbox.errors import RpcFailure

    sandbox = embedded.sandbox
    phone = (request.POST if request.method == "POST" else request.GET).get(
        "phone", SANDBOX_PASSPORT_PHONE
    )
    if request.method == "GET":
        now = timezone.now()
        requests = []
        for waiting in selectors.passport_requests_waiting(now=now):
            item: dict[str, Any] = {
                "id": str(waiting.pk),
                "expires_in": _seconds_left(waiting.expires_at, now),
            }
            url = _sandbox_passport_url(item["id"])
            try:
                item["form"] = sandbox.passport_summary(phone, url) if url else None
            except (ValueError, RpcFailure):
                item["form"] = None
            requests.append(item)
        return JsonResponse({"requests": requests if passport.passport_bot() else []})
    action = request.POST.get("action", "share")
    url = _sandbox_passport_url(request.POST.get("id", ""))
    if url is None or action not in _SANDBOX_PASSPORT_ACTIONS:
        return JsonResponse({"error": "REQUEST_NOT_WAITING"}, status=404)
    try:
        if action == "decline":
            return JsonResponse({"outcome": "declined"})
        if action == "send_code":
            sandbox.passport_send_phone_code(phone)
            return JsonResponse({"outcome": "code_sent"})
        if action == "verify_phone":
            sandbox.passport_verify_phone(phone, request.POST.get("code", ""))
            return JsonResponse({"outcome": "verified"})
        answer = sandbox.passport_share if action == "share" else sandbox.passport_authorize
        outcome = answer(phone, url)
    except ValueError:
        return JsonResponse({"error": "PHONE_NUMBER_INVALID"}, status=400)
    except RpcFailure as failure:
        return JsonResponse({"error": failure.message}, status=400)
    return JsonResponse({"shared": outcome == "shared", "outcome": outcome})


def _seconds_left(moment: Any, now: Any) -> int:
    return max(0, math.ceil((moment - now).total_seconds()))


#: Largest delivery report accepted (a RequestStatus is a few hundred bytes).
REPORT_MAX_BYTES = 16 * 1024


def _report_token() -> str:
    from .gateway_requests import gateway_address

    return gateway_address()[1]


@csrf_exempt  # Only this view: the Gateway signs its reports instead.
@require_POST
async def gateway_report(request: HttpRequest) -> HttpResponse:
    """A Gateway API delivery report: checked, recorded as an event, pushed to the visitor.

    Refused: a body over :data:`REPORT_MAX_BYTES` (413); no signature or timestamp (401); a
    wrong signature, or a timestamp outside ``TELEGRAM_GATEWAY_REPORT_WINDOW`` (403); a
    signature seen before, a replay (409); a body that is not a report (400); a request id no
    verification made (404).
    """
    length = request.headers.get("Content-Length") or "0"
    if not length.isdigit() or int(length) > REPORT_MAX_BYTES:
        return HttpResponse(status=413)
    body = request.body
    if len(body) > REPORT_MAX_BYTES:
        return HttpResponse(status=413)
    token = _report_token()
    timestamp = request.headers.get("X-Request-Timestamp", "")
    signature = request.headers.get("X-Request-Signature", "")
    if not token or not timestamp or not signature:
        return HttpResponse(status=401)
    expected = report_signature(token, timestamp, body)
    if not hmac.compare_digest(expected, signature.lower()):
        return HttpResponse(status=403)
    window = get_config()["TELEGRAM_GATEWAY_REPORT_WINDOW"]
    if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > window:
        return HttpResponse(status=403)
    # A signature is remembered for as long as its timestamp is accepted.
    if not await cache.aadd(f"verification:gateway-report:{expected}", 1, timeout=2 * window):
        return HttpResponse(status=409)
    try:
        report = json.loads(body)
        request_id = str(report["request_id"])
        delivery = report.get("delivery_status") or {}
        status = delivery.get("status")
    except (ValueError, KeyError, TypeError, AttributeError):
        return HttpResponse(status=400)
    if status not in DELIVERY_STATUSES:
        return HttpResponse(status=400)
    details = {
        name: report[name]
        for name in ("request_cost", "remaining_balance", "is_refunded")
        if name in report
    }
    try:
        verification, changed = await db(services.verification_delivery_report)(
            request_id=request_id, status=status, updated_at=delivery.get("updated_at"), **details
        )
    except services.UnknownRequest:
        return HttpResponse(status=404)
    if changed:
        await dispatch.push(verification.owner, frame("delivery", verification, status=status))
    return HttpResponse(status=200)
