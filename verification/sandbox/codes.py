"""Issuing and checking confirmation codes with Telegram's semantics.

A ``phone_code_hash`` is bound to the auth key that asked for it, to the phone number and to the
purpose (login or verify). It dies when it is used, cancelled, superseded by a resend or a new
send, expires, or after ``MAX_ATTEMPTS`` wrong codes.
"""

from __future__ import annotations

import math
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from telethon.tl import types

from .errors import RpcFailure
from .phones import FRAGMENT_URL, MISSED_CALL_PREFIX, SMS_WORDS, PhoneRules, e164

MAX_ATTEMPTS = 5


@dataclass(frozen=True)
class DeliveredCode:
    """One code as the sandbox "delivered" it (what the user would read on their phone)."""

    phone: str  # "+E164"
    code: str
    purpose: str  # "login" | "verify"
    code_type: str  # app, sms, call, flash_call, missed_call, fragment_sms, sms_word, sms_phrase
    sent_at: datetime  # UTC, aware
    prefix: str | None = None  # missed_call: the calling number starts with this
    url: str | None = None  # fragment_sms: where the code can be read


@dataclass
class CodeRequest:
    phone_code_hash: str
    digits: str
    purpose: str
    key_id: int
    chain: tuple[str, ...]
    step: int
    base_code: str  # the 5-digit code, kept across resends
    code: str  # what must be typed for this delivery
    code_type: str
    expires_at: float
    attempts: int = 0
    alive: bool = True
    prefix: str | None = None
    url: str | None = None
    created: float = field(default_factory=time.monotonic)


_SENT_TYPES: dict[str, Callable[[CodeRequest], object]] = {
    "app": lambda r: types.auth.SentCodeTypeApp(length=len(r.code)),
    "sms": lambda r: types.auth.SentCodeTypeSms(length=len(r.code)),
    "call": lambda r: types.auth.SentCodeTypeCall(length=len(r.code)),
    "flash_call": lambda r: types.auth.SentCodeTypeFlashCall(pattern=r.code),
    "missed_call": lambda r: types.auth.SentCodeTypeMissedCall(
        prefix=r.prefix or "", length=len(r.code)
    ),
    "fragment_sms": lambda r: types.auth.SentCodeTypeFragmentSms(url=r.url or "", length=5),
    "sms_word": lambda r: types.auth.SentCodeTypeSmsWord(beginning=r.code[0]),
    "sms_phrase": lambda r: types.auth.SentCodeTypeSmsPhrase(beginning=r.code.split()[0]),
}

_NEXT_TYPES: dict[str, Callable[[], object]] = {
    "sms": types.auth.CodeTypeSms,
    "call": types.auth.CodeTypeCall,
    "flash_call": types.auth.CodeTypeFlashCall,
    "missed_call": types.auth.CodeTypeMissedCall,
    "fragment_sms": types.auth.CodeTypeFragmentSms,
}


def _expired() -> RpcFailure:
    return RpcFailure(400, "PHONE_CODE_EXPIRED")


class CodeBook:
    """All outstanding code requests of one sandbox server (lives on the server's loop)."""

    def __init__(
        self,
        *,
        resend_timeout: float,
        code_lifetime: float,
        deliver: Callable[[DeliveredCode], None],
    ) -> None:
        self.resend_timeout = resend_timeout
        self.code_lifetime = code_lifetime
        self._deliver = deliver
        self._requests: dict[str, CodeRequest] = {}

    # --- public operations ---------------------------------------------------------------

    def send(self, *, key_id: int, rules: PhoneRules, purpose: str) -> types.auth.SentCode:
        """A fresh code; supersedes this key's earlier hashes for the same number and purpose."""
        self._prune()
        for request in self._requests.values():
            if (request.key_id, request.digits, request.purpose) == (
                key_id,
                rules.digits,
                purpose,
            ):
                request.alive = False
        base = rules.test_digit * 5 if rules.test_digit else f"{secrets.randbelow(100000):05d}"
        return self._issue(key_id=key_id, rules=rules, purpose=purpose, step=0, base_code=base)

    def resend(
        self, *, key_id: int, rules: PhoneRules, phone_code_hash: str
    ) -> types.auth.SentCode:
        """The next delivery type of the chain, same code where the type allows, new hash."""
        request = self._live(key_id, rules.digits, phone_code_hash, purpose=None)
        if request.step + 1 >= len(request.chain):
            raise RpcFailure(406, "SEND_CODE_UNAVAILABLE")
        request.alive = False
        return self._issue(
            key_id=key_id,
            rules=rules,
            purpose=request.purpose,
            step=request.step + 1,
            base_code=request.base_code,
            chain=request.chain,
        )

    def expire(self, *, digits: str) -> int:
        """End the lifetime of every outstanding code of ``digits`` now (as if it had run
        out); how many there were."""
        expired = 0
        for request in self._requests.values():
            if request.digits == digits and request.alive:
                request.expires_at = time.monotonic()
                expired += 1
        return expired

    def cancel(self, *, key_id: int, digits: str, phone_code_hash: str) -> None:
        request = self._live(key_id, digits, phone_code_hash, purpose=None)
        request.alive = False

    def check(
        self, *, key_id: int, digits: str, phone_code_hash: str, code: str | None, purpose: str
    ) -> None:
        """Accept the code (and consume the hash) or raise the error Telegram would."""
        if not phone_code_hash:
            raise RpcFailure(400, "PHONE_CODE_HASH_EMPTY")
        if not code:
            raise RpcFailure(400, "PHONE_CODE_EMPTY")
        request = self._live(key_id, digits, phone_code_hash, purpose=purpose)
        if code.strip().casefold() != request.code.casefold():
            request.attempts += 1
            if request.attempts >= MAX_ATTEMPTS:
                request.alive = False
            raise RpcFailure(400, "PHONE_CODE_INVALID")
        request.alive = False

    # --- internals -----------------------------------------------------------------------

    def _live(
        self, key_id: int, digits: str, phone_code_hash: str, *, purpose: str | None
    ) -> CodeRequest:
        if not phone_code_hash:
            raise RpcFailure(400, "PHONE_CODE_HASH_EMPTY")
        request = self._requests.get(phone_code_hash)
        if (
            request is None
            or not request.alive
            or request.key_id != key_id
            or request.digits != digits
            or (purpose is not None and request.purpose != purpose)
        ):
            raise _expired()
        if time.monotonic() >= request.expires_at:
            request.alive = False
            raise _expired()
        return request

    def _issue(
        self,
        *,
        key_id: int,
        rules: PhoneRules,
        purpose: str,
        step: int,
        base_code: str,
        chain: tuple[str, ...] | None = None,
    ) -> types.auth.SentCode:
        chain = chain or rules.chain
        code_type = chain[step]
        code, prefix, url = base_code, None, None
        if code_type == "missed_call":
            code = rules.test_digit * 4 if rules.test_digit else f"{secrets.randbelow(10000):04d}"
            prefix = MISSED_CALL_PREFIX
        elif code_type == "sms_word":
            code = secrets.choice(SMS_WORDS)
        elif code_type == "fragment_sms":
            url = FRAGMENT_URL.format(digits=rules.digits)
        request = CodeRequest(
            phone_code_hash=secrets.token_hex(9),
            digits=rules.digits,
            purpose=purpose,
            key_id=key_id,
            chain=chain,
            step=step,
            base_code=base_code,
            code=code,
            code_type=code_type,
            expires_at=time.monotonic() + self.code_lifetime,
            prefix=prefix,
            url=url,
        )
        self._requests[request.phone_code_hash] = request
        self._deliver(
            DeliveredCode(
                phone=e164(rules.digits),
                code=code,
                purpose=purpose,
                code_type=code_type,
                sent_at=datetime.now(UTC),
                prefix=prefix,
                url=url,
            )
        )
        next_type = None
        if step + 1 < len(chain):
            next_type = _NEXT_TYPES[chain[step + 1]]()
        return types.auth.SentCode(
            type=_SENT_TYPES[code_type](request),
            phone_code_hash=request.phone_code_hash,
            next_type=next_type,
            timeout=max(1, math.ceil(self.resend_timeout)) if next_type else None,
        )

    def _prune(self) -> None:
        # Dead or expired requests are kept for a while only so that late calls still get
        # PHONE_CODE_EXPIRED rather than a confusing error; after that they are dropped.
        horizon = time.monotonic() - max(self.code_lifetime, 60.0) * 2
        stale = [h for h, r in self._requests.items() if r.created < horizon]
        for phone_code_hash in stale:
            del self._requests[phone_code_hash]
