"""The sandbox server: a local MTProto endpoint that the unmodified Telethon client talks to."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

from telethon.tl import types

from . import passport
from .api import SandboxApi
from .codes import CodeBook, DeliveredCode
from .connection import ClientConnection, Session
from .crypto import MessageIdClock, SaltBook, ServerKey
from .errors import RpcFailure
from .phones import (
    PASSPORT_DECLINES,
    PASSPORT_EMPTY,
    PASSPORT_LATE,
    InvalidPhone,
    PhoneRules,
    normalize_phone,
    passport_scenario,
)
from .store import Account, AuthKeyRecord, Store
from .updates import UpdateBook

logger = logging.getLogger("verification.sandbox")

MAX_SESSIONS = 10_000
#: The auth key id the simulated Telegram app's own code requests are bound to.
APP_KEY_ID = 0
PHONE_VALUE = "SecureValueTypePhone"


@dataclass
class _Injection:
    method: str
    times: int
    error: str = ""
    code: int = 400
    phone: str | None = None
    seconds: float = 0.0


class SandboxServer:
    """A local MTProto server with Telegram's code, sign-in and error semantics.

    All state lives on the event loop that runs ``start()``; call the methods below from that
    loop (or use `SandboxThread`, whose wrappers are thread-safe).
    """

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        resend_timeout: float = 60.0,
        code_lifetime: float = 600.0,
        private_key_pem: bytes | None = None,
        state_file: str | os.PathLike[str] | None = None,
    ) -> None:
        self.host = host
        self.port = port
        self.store = Store(state_file)
        if private_key_pem is not None:
            self.server_key = ServerKey.from_pem(private_key_pem)
        elif self.store.private_key_pem:
            self.server_key = ServerKey.from_pem(self.store.private_key_pem)
        else:
            self.server_key = ServerKey.generate()
        if self.store.private_key_pem != self.server_key.private_pem:
            self.store.set_server_key(self.server_key)
        self.salts = SaltBook(self.store.salt_secret)
        self.clock = MessageIdClock()
        self.codes = CodeBook(
            resend_timeout=resend_timeout, code_lifetime=code_lifetime, deliver=self._deliver
        )
        self.api = SandboxApi(self)
        self.updates = UpdateBook()
        #: How long a ``late`` Passport scenario user's app waits before it authorizes (past
        #: the app's default ``PASSPORT_EXPIRES_AFTER`` of 600 s).
        self.passport_late_delay = 660.0
        self._app_code_hashes: dict[str, str] = {}
        self.inbox: list[DeliveredCode] = []
        self.stats: Counter[str] = Counter()
        self._subscribers: list[Callable[[DeliveredCode], None]] = []
        self._injections: list[_Injection] = []
        self._delays: list[_Injection] = []
        self._sessions: dict[tuple[int, int], Session] = {}
        self._connections: set[ClientConnection] = set()
        self._server: asyncio.base_events.Server | None = None

    # --- settings ------------------------------------------------------------------------

    @property
    def resend_timeout(self) -> float:
        return self.codes.resend_timeout

    @resend_timeout.setter
    def resend_timeout(self, value: float) -> None:
        self.codes.resend_timeout = value

    @property
    def code_lifetime(self) -> float:
        return self.codes.code_lifetime

    @code_lifetime.setter
    def code_lifetime(self, value: float) -> None:
        self.codes.code_lifetime = value

    @property
    def public_key_pem(self) -> str:
        """The RSA public key as PKCS#1 PEM, for ``telethon.crypto.rsa.add_key(pem, old=False)``."""
        return self.server_key.public_pem

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    @property
    def advertised_host(self) -> str:
        """The host put into help.getConfig's dc_options (a wildcard bind means loopback)."""
        return {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "::": "::1"}.get(self.host, self.host)

    # --- lifecycle -----------------------------------------------------------------------

    async def start(self) -> None:
        """Bind and start accepting connections; ``port`` is the real port afterwards."""
        self._server = await asyncio.start_server(self._accept, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        logger.info("Sandbox: listening on %s", self.address)

    async def stop(self) -> None:
        if self._server is None:
            return
        self._server.close()
        for connection in list(self._connections):
            connection.close(abort=True)
        await self._server.wait_closed()
        self._server = None
        logger.info("Sandbox: stopped")

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connection = ClientConnection(self, reader, writer)
        self._connections.add(connection)
        self.stats["connections"] += 1
        try:
            await connection.serve()
        finally:
            self._connections.discard(connection)

    def drop_connections(self) -> None:
        """Abruptly close every client connection (clients are expected to reconnect)."""
        for connection in list(self._connections):
            connection.close(abort=True)

    # --- sessions ------------------------------------------------------------------------

    def session(self, key_id: int, session_id: int) -> Session:
        key = (key_id, session_id)
        session = self._sessions.get(key)
        if session is None:
            # Every Telethon (re)connect opens a new session; forget the oldest ones so a
            # long-running sandbox does not grow without bound.
            while len(self._sessions) >= MAX_SESSIONS:
                del self._sessions[next(iter(self._sessions))]
            session = self._sessions[key] = Session(session_id)
        return session

    def destroy_session(self, key_id: int, session_id: int) -> bool:
        return self._sessions.pop((key_id, session_id), None) is not None

    # --- codes ---------------------------------------------------------------------------

    def _deliver(self, delivered: DeliveredCode) -> None:
        self.inbox.append(delivered)
        extra = ""
        if delivered.prefix:
            extra = f", caller {delivered.prefix}{delivered.code}"
        elif delivered.url:
            extra = f", {delivered.url}"
        logger.info(
            "Sandbox: code %s for %s (%s%s)",
            delivered.code,
            delivered.phone,
            delivered.code_type,
            extra,
        )
        for callback in list(self._subscribers):
            try:
                callback(delivered)
            except Exception:
                logger.exception("Sandbox: inbox subscriber failed")

    def subscribe(self, callback: Callable[[DeliveredCode], None]) -> Callable[[], None]:
        """Call ``callback(code)`` for every code delivered from now on; returns unsubscribe."""
        self._subscribers.append(callback)

        def unsubscribe() -> None:
            if callback in self._subscribers:
                self._subscribers.remove(callback)

        return unsubscribe

    def last_code(self, phone: str) -> str | None:
        """The most recent code delivered to ``phone`` (any format), or None."""
        try:
            wanted = "+" + normalize_phone(phone)
        except InvalidPhone:
            return None
        for delivered in reversed(self.inbox):
            if delivered.phone == wanted:
                return delivered.code
        return None

    # --- accounts ------------------------------------------------------------------------

    def add_account(self, phone: str, *, password: str | None = None) -> None:
        """Create (or update) the account for ``phone``, optionally with a 2FA password."""
        self.store.set_password(normalize_phone(phone), password)

    # --- bots and Telegram Passport ------------------------------------------------------

    def add_bot(self, token: str, *, public_key_pem: str) -> int:
        """Register a bot and the Passport public key its owner gave @BotFather; its id."""
        return self.store.add_bot(token, public_key_pem).user_id

    def push(self, user_id: int, update: object) -> int:
        """Send ``update`` to every connection signed in as ``user_id``; how many got it."""
        return sum(
            connection.push(update)
            for connection in list(self._connections)
            if connection.latest is not None and connection.latest[2].user_id == user_id
        )

    def send_to_bot(
        self, visitor: Account, bot: Account, action: types.MessageActionSecureValuesSentMe
    ) -> int:
        """Deliver ``action`` to ``bot`` as a service message from ``visitor`` (a live update,
        kept for getDifference); how many of the bot's connections got it."""
        message = passport.service_message(
            message_id=self.updates.next_message_id(bot.user_id),
            from_user=visitor.user_id,
            to_bot=bot.user_id,
            action=action,
        )
        users = [visitor.as_user(is_self=False)]
        update = self.updates.add_message(bot.user_id, message, users)
        delivered = self.push(
            bot.user_id,
            types.Updates(updates=[update], users=users, chats=[], date=int(time.time()), seq=0),
        )
        logger.info(
            "Sandbox: %s sent Passport data to bot %s (%d connection(s))",
            visitor.digits,
            bot.user_id,
            delivered,
        )
        return delivered

    def passport_form(self, url: str) -> tuple[Account, dict[str, object], str]:
        """A Passport link's bot, scope and nonce, checked as a Telegram app checks them."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
        if query.get("domain") != "telegrampassport":
            raise RpcFailure(400, "PASSPORT_LINK_INVALID")
        try:
            bot = self.store.users.get(int(query.get("bot_id", "")))
        except ValueError:
            bot = None
        if bot is None or not bot.bot_token:
            raise RpcFailure(400, "BOT_INVALID")
        if query.get("public_key", "").strip() != bot.bot_public_key.strip():
            raise RpcFailure(400, "PUBLIC_KEY_INVALID")
        try:
            scope = json.loads(query.get("scope", ""))
            passport.required_types(scope)
        except ValueError:
            raise RpcFailure(400, "SCOPE_INVALID") from None
        nonce = query.get("nonce") or query.get("payload") or ""
        if not nonce:
            raise RpcFailure(400, "SCOPE_INVALID")
        return bot, scope, nonce

    def passport_share(
        self, phone: str, url: str, *, tampering: passport.Tampering | None = None
    ) -> str:
        """Act as ``phone``'s Telegram app opening a Passport ``url`` and pressing Authorize:
        the bot the link names receives ``messageActionSecureValuesSentMe`` with the phone
        number, encrypted for the public key the bot registered (the link's must match it).

        A Passport without a phone gets the number first: a ``+99966X9012`` user's app verifies
        it (the code is delivered to the inbox), any other number's is taken as verified. The
        outcome is that of `passport_authorize`.
        """
        self.passport_form(url)
        visitor = self.store.account(normalize_phone(phone))
        scenario = passport_scenario(visitor.digits)
        if scenario != PASSPORT_DECLINES and PHONE_VALUE not in visitor.passport:
            if scenario == PASSPORT_EMPTY:
                self.passport_verify_phone(phone, self.passport_send_phone_code(phone))
            else:
                value = passport.plain_value(types.SecurePlainPhone(phone=visitor.digits))
                self.store.save_secure_value(visitor, value)
        return self.passport_authorize(phone, url, tampering=tampering)

    def passport_authorize(
        self, phone: str, url: str, *, tampering: passport.Tampering | None = None
    ) -> str:
        """``phone``'s app authorizes the form of ``url`` with the phone its Passport holds
        (``400 PHONE_VERIFICATION_NEEDED`` if none), as ``account.acceptAuthorization`` does.

        The number's Passport scenario (``phones.PASSPORT_SCENARIOS``) decides the outcome:
        ``"shared"``; ``"declined"`` (nothing is sent); ``"late"`` (sent after
        ``passport_late_delay`` seconds, once the request has expired).
        """
        bot, _, nonce = self.passport_form(url)
        visitor = self.store.account(normalize_phone(phone))
        scenario = passport_scenario(visitor.digits)
        if scenario == PASSPORT_DECLINES:
            logger.info("Sandbox: %s declined bot %s's Passport form", visitor.digits, bot.user_id)
            return "declined"
        held = visitor.passport.get(PHONE_VALUE)
        if held is None or not isinstance(held.plain_data, types.SecurePlainPhone):
            raise RpcFailure(400, "PHONE_VERIFICATION_NEEDED")
        action = passport.secure_values_sent(
            phone_digits=held.plain_data.phone,
            public_key_pem=bot.bot_public_key,
            nonce=nonce,
            tampering=tampering,
        )
        if scenario == PASSPORT_LATE:
            asyncio.get_running_loop().call_later(
                self.passport_late_delay, self.send_to_bot, visitor, bot, action
            )
            return "late"
        self.send_to_bot(visitor, bot, action)
        return "shared"

    def passport_summary(self, phone: str, url: str) -> dict[str, object]:
        """What ``phone``'s app shows for ``url``: the bot, the scope's types and the phone the
        Passport holds (``"+E164"`` or None)."""
        bot, scope, _ = self.passport_form(url)
        visitor = self.store.account(normalize_phone(phone))
        held = visitor.passport.get(PHONE_VALUE)
        return {
            "bot": f"@{bot.as_user(is_self=False).username}",
            "asks": [
                item if isinstance(item, str) else str(item.get("type", "one_of"))
                for item in scope.get("data", [])  # type: ignore[attr-defined]
            ],
            "phone": "+" + held.plain_data.phone
            if held is not None and isinstance(held.plain_data, types.SecurePlainPhone)
            else None,
            "scenario": passport_scenario(visitor.digits),
        }

    def passport_send_phone_code(self, phone: str) -> str:
        """The app's ``account.sendVerifyPhoneCode`` for its own number. The code is delivered
        to the inbox; it is also returned, for callers that play the user reading it."""
        rules = PhoneRules.for_phone(normalize_phone(phone))
        if rules.send_error is not None:
            raise RpcFailure(*rules.send_error)
        sent = self.codes.send(key_id=APP_KEY_ID, rules=rules, purpose="verify")
        self._app_code_hashes[rules.digits] = sent.phone_code_hash
        return self.last_code(phone) or ""

    def passport_verify_phone(self, phone: str, code: str) -> None:
        """The app's ``account.verifyPhone`` with the code the user read, then
        ``account.saveSecureValue``: the number is in the user's Passport, verified."""
        visitor = self.store.account(normalize_phone(phone))
        self.codes.check(
            key_id=APP_KEY_ID,
            digits=visitor.digits,
            phone_code_hash=self._app_code_hashes.get(visitor.digits, ""),
            code=code,
            purpose="verify",
        )
        visitor.verified_phones.add(visitor.digits)
        value = passport.plain_value(types.SecurePlainPhone(phone=visitor.digits))
        self.store.save_secure_value(visitor, value)

    def expire_codes(self, phone: str) -> int:
        """Make every outstanding code of ``phone`` expire now; how many there were."""
        return self.codes.expire(digits=normalize_phone(phone))

    # --- fault injection -----------------------------------------------------------------

    def inject_error(
        self,
        method: str,
        error: str,
        *,
        code: int = 400,
        phone: str | None = None,
        times: int = 1,
    ) -> None:
        """Answer the next ``times`` calls of ``method`` (e.g. "auth.sendCode") with an error.

        With ``phone``, only calls whose ``phone_number`` is that number are affected.
        """
        if times < 1:
            raise ValueError("times must be at least 1")
        digits = normalize_phone(phone) if phone is not None else None
        self._injections.append(_Injection(method, times, error, code, digits))

    def inject_delay(self, method: str, seconds: float, *, times: int = 1) -> None:
        """Hold the answer to the next ``times`` calls of ``method`` for ``seconds``."""
        if times < 1:
            raise ValueError("times must be at least 1")
        self._delays.append(_Injection(method, times, seconds=seconds))

    def _take_delay(self, method: str) -> float:
        for injection in self._delays:
            if injection.method == method:
                injection.times -= 1
                if injection.times <= 0:
                    self._delays.remove(injection)
                return injection.seconds
        return 0.0

    def _take_error(self, method: str, request: object) -> RpcFailure | None:
        phone = getattr(request, "phone_number", None)
        for injection in self._injections:
            if injection.method != method:
                continue
            if injection.phone is not None:
                try:
                    if phone is None or normalize_phone(phone) != injection.phone:
                        continue
                except InvalidPhone:
                    continue
            injection.times -= 1
            if injection.times <= 0:
                self._injections.remove(injection)
            return RpcFailure(injection.code, injection.error)
        return None

    def _invoke(self, record: AuthKeyRecord, request: object, name: str) -> object:
        self.stats[f"rpc:{name}"] += 1
        failure = self._take_error(name, request)
        if failure is not None:
            raise failure
        return self.api.call(record, request)
