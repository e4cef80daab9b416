"""A local Telegram Gateway API (core.telegram.org/gateway/api) over HTTP, for development and
tests: the same test and scenario numbers as the MTProto sandbox, a balance that goes down per
message, and signed delivery reports posted to each message's ``callback_url``.

Run it embedded (``GatewaySandbox(...).start()``, a thread of its own) or standalone::

    python -m verification.sandbox.gateway_api [--host 127.0.0.1] [--port N] [--token T]

Numbers (``X`` is a digit 1-9; a test number's code is ``X`` repeated to the code length):

- ``+99966XYYYY``: a test number, always on Telegram;
- ``+99966X9001``: ``FLOOD_WAIT_30`` on every call about it;
- ``+99966X9002``: ``PHONE_NUMBER_INVALID``;
- ``+99966X9101``: not on Telegram (``checkSendAbility`` answers ``PHONE_NUMBER_NOT_FOUND``);
- ``+99966X9102``: the balance is not enough (``BALANCE_NOT_ENOUGH``);
- ``+99966X9103``: its delivery reports arrive late and out of order (``delivered`` first).

Any other valid number gets a random code. A message is reported ``sent`` and then
``delivered``; ``read`` when :meth:`GatewaySandbox.mark_read` is called (the inbox page does it
when it shows the code); ``expired`` when its ``ttl`` passes unread; ``revoked`` when revoked
before delivery. A report the callback URL does not answer with HTTP 200 is posted again, up to
``REPORT_RETRIES`` times with growing waits, as Telegram does.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from ..gateway.telegram_gateway import report_signature
from .phones import TEST_NUMBER, InvalidPhone, e164, normalize_phone

logger = logging.getLogger("verification.sandbox.gateway")

DEFAULT_TOKEN = "sandbox-gateway-token"
PRICE = 0.01
MAX_BODY = 64 * 1024

# Scenario tail → the error every method answers about that number.
ERRORS = {
    "9001": "FLOOD_WAIT_30",
    "9002": "PHONE_NUMBER_INVALID",
    "9101": "PHONE_NUMBER_NOT_FOUND",
    "9102": "BALANCE_NOT_ENOUGH",
}
LATE_REPORTS = "9103"
#: A report not answered with HTTP 200 is posted again, up to this many times.
REPORT_RETRIES = 10


@dataclass
class GatewayMessage:
    """One message the sandbox "sent" (the inbox shows its code)."""

    request_id: str
    phone: str  # "+E164"
    code: str
    sent_at: datetime
    expires_at: float
    callback_url: str = ""
    payload: str = ""
    cost: float = PRICE
    delivery: str = "sent"
    attempts: int = 0
    verified: bool = False
    revoked: bool = False
    purpose: str = "gateway"
    code_type: str = "app"
    prefix: str | None = None
    url: str | None = None
    reports: list[str] = field(default_factory=list)


class GatewayError(Exception):
    def __init__(self, error: str, status: int = 400) -> None:
        super().__init__(error)
        self.error = error
        self.status = status


class GatewaySandbox:
    """The Gateway API on ``host:port`` (0 picks a free port), in a thread of its own."""

    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        token: str = DEFAULT_TOKEN,
        balance: float = 100.0,
        price: float = PRICE,
        max_attempts: int = 3,
        report_delay: float = 0.1,
        deliver: Callable[[str, bytes, dict[str, str]], int] | None = None,
    ) -> None:
        """``deliver(url, body, headers)`` replaces the HTTP POST of each delivery report (a
        test can hand reports to an in-process client instead of a live server)."""
        self.host = host
        self._port = port
        self.token = token
        self.balance = balance
        self.price = price
        self.max_attempts = max_attempts
        self.report_delay = report_delay
        self.deliver = deliver
        self.messages: dict[str, GatewayMessage] = {}
        self.inbox: list[GatewayMessage] = []
        # request_id of a billed checkSendAbility → its phone (spent by the send it makes free).
        self._checks: dict[str, str] = {}
        # Every report posted: (request_id, status, HTTP status or error).
        self.reports: list[tuple[str, str, int | str]] = []
        # (method, error, phone or None) answered instead, once each (see inject_error).
        self._injected: list[tuple[str, str, str | None]] = []
        # (method, seconds) its next answer is held for (see inject_delay).
        self._delays: list[tuple[str, float]] = []
        self._lock = threading.RLock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._timers: list[threading.Timer] = []

    # Running ---------------------------------------------------------------------------------

    def start(self) -> GatewaySandbox:
        sandbox = self

        class Handler(_Handler):
            pass

        Handler.sandbox = sandbox
        self._server = ThreadingHTTPServer((self.host, self._port), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="gateway-sandbox", daemon=True
        )
        self._thread.start()
        logger.info("Gateway API sandbox listening on %s", self.url)
        return self

    def stop(self) -> None:
        with self._lock:
            for timer in self._timers:
                timer.cancel()
            self._timers.clear()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> GatewaySandbox:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "not started"
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}/"

    # What tests and the inbox read -------------------------------------------------------------

    def last_code(self, phone: str) -> str | None:
        wanted = e164(normalize_phone(phone))
        with self._lock:
            for message in reversed(self.inbox):
                if message.phone == wanted:
                    return message.code
        return None

    def last_message(self, phone: str) -> GatewayMessage | None:
        wanted = e164(normalize_phone(phone))
        with self._lock:
            return next((m for m in reversed(self.inbox) if m.phone == wanted), None)

    def expire(self, phone: str) -> int:
        """End the lifetime of every message to ``phone`` now (as if its ``ttl`` had run out);
        how many there were."""
        wanted = e164(normalize_phone(phone))
        with self._lock:
            messages = [m for m in self.messages.values() if m.phone == wanted]
            for message in messages:
                message.expires_at = time.time()
        return len(messages)

    def inject_error(self, method: str, error: str, *, phone: str | None = None) -> None:
        """Answer the next call of ``method`` (e.g. ``"sendVerificationMessage"``) with
        ``error`` (once the token is accepted); with ``phone``, the next such call about that
        number."""
        wanted = e164(normalize_phone(phone)) if phone is not None else None
        with self._lock:
            self._injected.append((method.casefold(), error, wanted))

    def inject_delay(self, method: str, seconds: float) -> None:
        """Hold the answer to the next call of ``method`` for ``seconds`` (after doing it)."""
        with self._lock:
            self._delays.append((method.casefold(), seconds))

    def _take_delay(self, method: str) -> float:
        with self._lock:
            for index, (name, seconds) in enumerate(self._delays):
                if name == method.casefold():
                    del self._delays[index]
                    return seconds
        return 0.0

    def _take_injected(self, method: str, params: dict[str, Any]) -> None:
        phone = None
        with contextlib.suppress(InvalidPhone):
            phone = e164(normalize_phone(str(params.get("phone_number", ""))))
        for index, (name, error, wanted) in enumerate(self._injected):
            if name == method.casefold() and wanted in (None, phone):
                del self._injected[index]
                raise GatewayError(error)

    def mark_read(self, request_id: str) -> None:
        """The visitor looked at the code: report ``read`` (once)."""
        with self._lock:
            message = self.messages.get(request_id)
            if message is None or message.revoked or message.delivery in {"read", "expired"}:
                return
            message.delivery = "read"
        self._report_later(message, "read", 0)

    # The API -----------------------------------------------------------------------------------

    def call(self, method: str, params: dict[str, Any], token: str) -> Any:
        """Answer one API call; raise :class:`GatewayError` for an ``ok: false`` answer."""
        if token != self.token:
            raise GatewayError("ACCESS_TOKEN_INVALID", 401)
        handler = {
            "checkSendAbility": self._check_send_ability,
            "sendVerificationMessage": self._send_verification_message,
            "checkVerificationStatus": self._check_verification_status,
            "revokeVerificationMessage": self._revoke_verification_message,
        }.get(method)
        if handler is None:
            raise GatewayError("METHOD_NOT_FOUND", 404)
        delay = self._take_delay(method)
        with self._lock:
            self._take_injected(method, params)
            result = handler(params)
        if delay:
            time.sleep(delay)
        return result

    def _phone(self, params: dict[str, Any]) -> tuple[str, str]:
        """(E.164, scenario tail or "") of ``phone_number``, or the error it names."""
        try:
            digits = normalize_phone(str(params.get("phone_number", "")))
        except InvalidPhone:
            raise GatewayError("PHONE_NUMBER_INVALID") from None
        match = TEST_NUMBER.match(digits)
        tail = match.group(2) if match else ""
        if tail in ERRORS:
            raise GatewayError(ERRORS[tail])
        return e164(digits), tail

    def _charge(self) -> None:
        if self.balance < self.price:
            raise GatewayError("BALANCE_NOT_ENOUGH")
        self.balance = round(self.balance - self.price, 6)

    def _status(self, message: GatewayMessage, **extra: Any) -> dict[str, Any]:
        data: dict[str, Any] = {
            "request_id": message.request_id,
            "phone_number": message.phone,
            "request_cost": message.cost,
            "delivery_status": {"status": message.delivery, "updated_at": int(time.time())},
        }
        if message.payload:
            data["payload"] = message.payload
        data.update(extra)
        return data

    def _check_send_ability(self, params: dict[str, Any]) -> dict[str, Any]:
        phone, _ = self._phone(params)
        self._charge()
        request_id = secrets.token_hex(8)
        self._checks[request_id] = phone
        return {
            "request_id": request_id,
            "phone_number": phone,
            "request_cost": self.price,
            "remaining_balance": self.balance,
        }

    def _send_verification_message(self, params: dict[str, Any]) -> dict[str, Any]:
        phone, tail = self._phone(params)
        try:
            length = int(params.get("code_length") or 5)
            ttl = int(params.get("ttl") or 0)
        except (TypeError, ValueError):
            raise GatewayError("PARAMETER_INVALID") from None
        if not 4 <= length <= 8 or (ttl and not 30 <= ttl <= 3600):
            raise GatewayError("PARAMETER_INVALID")
        check = str(params.get("request_id") or "")
        if check and self._checks.get(check) == phone:
            # The check was billed; the send it names is free.
            del self._checks[check]
            cost = 0.0
        else:
            self._charge()
            cost = self.price
        match = TEST_NUMBER.match(phone[1:])
        code = str(params.get("code") or "") or (
            match.group(1) * length
            if match
            else "".join(secrets.choice("0123456789") for _ in range(length))
        )
        message = GatewayMessage(
            request_id=secrets.token_hex(8),
            phone=phone,
            code=code,
            sent_at=datetime.now(UTC),
            expires_at=time.time() + (ttl or 600),
            callback_url=str(params.get("callback_url") or ""),
            payload=str(params.get("payload") or "")[:128],
            cost=cost,
        )
        self.messages[message.request_id] = message
        self.inbox.append(message)
        logger.warning("Gateway sandbox: code %s for %s", code, phone)
        delay = self.report_delay
        if tail == LATE_REPORTS:
            self._report_later(message, "delivered", delay * 5)
            self._report_later(message, "sent", delay * 10)
        else:
            self._report_later(message, "sent", delay)
            self._report_later(message, "delivered", delay * 2)
        if ttl:
            self._report_later(message, "expired", ttl)
        # As documented: the balance comes only with an answer to a call that was charged.
        return self._status(message, **({"remaining_balance": self.balance} if cost else {}))

    def _message(self, params: dict[str, Any]) -> GatewayMessage:
        message = self.messages.get(str(params.get("request_id") or ""))
        if message is None:
            raise GatewayError("REQUEST_ID_INVALID")
        return message

    def _check_verification_status(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._message(params)
        code = params.get("code")
        now = int(time.time())
        if message.verified:
            verdict = "code_valid"
        elif message.revoked or time.time() >= message.expires_at:
            verdict = "expired"
        elif message.attempts >= self.max_attempts:
            verdict = "code_max_attempts_exceeded"
        elif code is None:
            verdict = "code_invalid" if message.attempts else ""
        elif str(code) == message.code:
            message.verified = True
            verdict = "code_valid"
        else:
            message.attempts += 1
            verdict = (
                "code_max_attempts_exceeded"
                if message.attempts >= self.max_attempts
                else "code_invalid"
            )
        extra: dict[str, Any] = {}
        if verdict:
            extra["verification_status"] = {"status": verdict, "updated_at": now}
            if code is not None:
                extra["verification_status"]["code_entered"] = str(code)
        return self._status(message, **extra)

    def _revoke_verification_message(self, params: dict[str, Any]) -> bool:
        message = self._message(params)
        message.revoked = True
        if message.delivery not in {"delivered", "read"}:
            # Delivered or read messages stay where they are, as on Telegram.
            message.delivery = "revoked"
            self._report_later(message, "revoked", 0)
        return True

    # Delivery reports ----------------------------------------------------------------------------

    def _report_later(self, message: GatewayMessage, status: str, delay: float) -> None:
        if message.callback_url:
            self._later(delay, self._report, message, status)

    def _later(self, delay: float, function: Callable[..., None], *args: Any) -> None:
        timer = threading.Timer(delay, function, args)
        timer.daemon = True
        with self._lock:
            self._timers = [t for t in self._timers if t.is_alive()]
            self._timers.append(timer)
        timer.start()

    def _report(self, message: GatewayMessage, status: str) -> None:
        with self._lock:
            if status == "expired" and (message.delivery == "read" or message.verified):
                return
            if status in {"sent", "delivered"} and message.revoked:
                return
            if status == "delivered" and message.delivery == "sent":
                message.delivery = "delivered"
            elif status == "expired":
                message.delivery = "expired"
            body = json.dumps(
                {
                    "request_id": message.request_id,
                    "phone_number": message.phone,
                    "request_cost": message.cost,
                    "delivery_status": {"status": status, "updated_at": int(time.time())},
                    **({"payload": message.payload} if message.payload else {}),
                }
            ).encode()
        self._post(message, status, body, 0)

    def _post(self, message: GatewayMessage, status: str, body: bytes, attempt: int) -> None:
        answer = self.send_report(
            message.callback_url, body, request_id=message.request_id, status=status
        )
        if answer != 200 and attempt < REPORT_RETRIES:
            # As Telegram does: the same report again, after longer and longer waits.
            delay = max(self.report_delay, 0.05) * 2**attempt
            self._later(delay, self._post, message, status, body, attempt + 1)

    def send_report(self, url: str, body: bytes, *, request_id: str = "", status: str = "") -> int:
        """POST one signed report to ``url``; returns the HTTP status (0 when unreachable)."""
        timestamp = str(int(time.time()))
        headers = {
            "Content-Type": "application/json",
            "X-Request-Timestamp": timestamp,
            "X-Request-Signature": report_signature(self.token, timestamp, body),
        }
        if self.deliver is not None:
            answer: int = self.deliver(url, body, headers)
            with self._lock:
                self.reports.append((request_id, status, answer))
            return answer
        request = urllib.request.Request(url, data=body, method="POST", headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                answer = response.status
        except urllib.error.HTTPError as exc:
            answer = exc.code
        except OSError as exc:
            logger.warning("Gateway sandbox: report to %s failed: %s", url, exc)
            answer = 0
        with self._lock:
            self.reports.append((request_id, status, answer))
        return answer


class _Handler(BaseHTTPRequestHandler):
    sandbox: GatewaySandbox
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("Gateway sandbox: " + format, *args)

    def do_GET(self) -> None:
        self._answer({})

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self._send(413, {"ok": False, "error": "REQUEST_TOO_LARGE"})
            return
        raw = self.rfile.read(length) if length else b""
        kind = self.headers.get("Content-Type", "").split(";")[0].strip()
        try:
            if kind == "application/json":
                params = json.loads(raw or b"{}")
            else:
                params = dict(urllib.parse.parse_qsl(raw.decode()))
        except ValueError:
            self._send(400, {"ok": False, "error": "BODY_INVALID"})
            return
        self._answer(params if isinstance(params, dict) else {})

    def _answer(self, params: dict[str, Any]) -> None:
        parsed = urllib.parse.urlsplit(self.path)
        params = {**dict(urllib.parse.parse_qsl(parsed.query)), **params}
        method = parsed.path.strip("/").rsplit("/", 1)[-1]
        authorization = self.headers.get("Authorization", "")
        token = authorization.removeprefix("Bearer ").strip() or str(params.pop("access_token", ""))
        try:
            result = self.sandbox.call(method, params, token)
        except GatewayError as exc:
            self._send(exc.status, {"ok": False, "error": exc.error})
            return
        self._send(200, {"ok": True, "result": result})

    def _send(self, status: int, data: dict[str, Any]) -> None:
        body = json.dumps(data).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A local Telegram Gateway API.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--balance", type=float, default=100.0)
    options = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sandbox = GatewaySandbox(
        host=options.host, port=options.port, token=options.token, balance=options.balance
    ).start()
    print(f"Gateway API sandbox on {sandbox.url} (token {sandbox.token})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        sandbox.stop()


if __name__ == "__main__":
    main()
