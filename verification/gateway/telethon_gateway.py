"""The gateway over Telethon: one long-lived client per sender account, on the worker's loop.

This is the only module outside the sandbox that imports Telethon.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypeVar

from telethon import TelegramClient, errors, events, functions, types
from telethon.crypto import rsa
from telethon.sessions import StringSession

from ..errors import ErrorCode
from ..passport import SharedPassport, SharedValue
from .base import (
    AccountUnusable,
    GatewayError,
    LoginResult,
    PasswordNeeded,
    SentCode,
    TelegramGateway,
)

logger = logging.getLogger("verification.gateway")

T = TypeVar("T")

_SENT_CODE_TYPES: dict[type, str] = {
    types.auth.SentCodeTypeApp: "app",
    types.auth.SentCodeTypeSms: "sms",
    types.auth.SentCodeTypeCall: "call",
    types.auth.SentCodeTypeFlashCall: "flash_call",
    types.auth.SentCodeTypeMissedCall: "missed_call",
    types.auth.SentCodeTypeEmailCode: "email",
    types.auth.SentCodeTypeFragmentSms: "fragment_sms",
    types.auth.SentCodeTypeFirebaseSms: "firebase_sms",
    types.auth.SentCodeTypeSmsWord: "sms_word",
    types.auth.SentCodeTypeSmsPhrase: "sms_phrase",
}
_NEXT_TYPES: dict[type, str] = {
    types.auth.CodeTypeSms: "sms",
    types.auth.CodeTypeCall: "call",
    types.auth.CodeTypeFlashCall: "flash_call",
    types.auth.CodeTypeMissedCall: "missed_call",
    types.auth.CodeTypeFragmentSms: "fragment_sms",
}
# Telegram errors that mean "this session is dead; log the account in again".
_DEAD_SESSION = (
    errors.AuthKeyUnregisteredError,
    errors.AuthKeyDuplicatedError,
    errors.SessionRevokedError,
    errors.SessionExpiredError,
    errors.UserDeactivatedError,
    errors.UserDeactivatedBanError,
    errors.AuthKeyError,
)
_KNOWN_ERRORS: list[tuple[type[BaseException], ErrorCode]] = [
    (errors.PhoneNumberInvalidError, ErrorCode.PHONE_NUMBER_INVALID),
    (errors.PhoneNumberBannedError, ErrorCode.PHONE_NUMBER_BANNED),
    (errors.PhoneNumberFloodError, ErrorCode.PHONE_NUMBER_FLOOD),
    (errors.PhoneCodeEmptyError, ErrorCode.PHONE_CODE_EMPTY),
    (errors.PhoneCodeInvalidError, ErrorCode.PHONE_CODE_INVALID),
    (errors.PhoneCodeExpiredError, ErrorCode.PHONE_CODE_EXPIRED),
    (errors.PhoneCodeHashEmptyError, ErrorCode.PHONE_CODE_EXPIRED),
    (errors.SendCodeUnavailableError, ErrorCode.SEND_CODE_UNAVAILABLE),
    (errors.PasswordHashInvalidError, ErrorCode.PASSWORD_INVALID),
]

_added_keys: set[str] = set()

#: Seconds an unfinished sender sign-in keeps its connected client (Telegram's codes live
#: about as long).
LOGIN_LIFETIME = 600.0


def sent_code_from_telegram(sent: Any) -> SentCode:
    if not isinstance(sent, types.auth.SentCode):
        # sentCodeSuccess / sentCodePaymentRequired are not valid answers for a verification.
        raise GatewayError(ErrorCode.SEND_CODE_UNAVAILABLE, telegram_error=type(sent).__name__)
    code_type = sent.type
    return SentCode(
        type=_SENT_CODE_TYPES.get(type(code_type), "sms"),
        phone_code_hash=sent.phone_code_hash,
        length=getattr(code_type, "length", None) or None,
        next_type=_NEXT_TYPES.get(type(sent.next_type)) if sent.next_type else None,
        timeout=sent.timeout,
        pattern=getattr(code_type, "pattern", "") or "",
        prefix=getattr(code_type, "prefix", "") or "",
        url=getattr(code_type, "url", "") or "",
        beginning=getattr(code_type, "beginning", "") or "",
    )


_SECURE_VALUE_TYPES: dict[type, str] = {
    types.SecureValueTypePhone: "phone",
    types.SecureValueTypeEmail: "email",
}


def shared_passport_from_telegram(update: Any) -> SharedPassport | None:
    """The Passport data in an ``updateNewMessage``, if it carries any."""
    message = getattr(update, "message", None)
    action = getattr(message, "action", None)
    if not isinstance(action, types.MessageActionSecureValuesSentMe):
        return None
    values = []
    for value in action.values:
        plain = value.plain_data
        values.append(
            SharedValue(
                type=_SECURE_VALUE_TYPES.get(type(value.type), type(value.type).__name__),
                plain=getattr(plain, "phone", "") or getattr(plain, "email", "") or "",
                data=value.data.data if value.data is not None else b"",
                hash=value.hash,
            )
        )
    sender = getattr(message, "from_id", None) or getattr(message, "peer_id", None)
    credentials = action.credentials
    return SharedPassport(
        values=tuple(values),
        credentials_data=credentials.data,
        credentials_hash=credentials.hash,
        credentials_secret=credentials.secret,
        user_id=getattr(sender, "user_id", None),
    )


def translate_error(exc: BaseException) -> GatewayError:
    """Our error for a Telethon exception."""
    if isinstance(exc, GatewayError):
        return exc
    name = type(exc).__name__
    if isinstance(exc, errors.FloodWaitError | errors.FloodPremiumWaitError):
        return GatewayError(ErrorCode.FLOOD_WAIT, retry_after=exc.seconds, telegram_error=name)
    if isinstance(exc, errors.FloodTestPhoneWaitError):
        return GatewayError(ErrorCode.FLOOD_WAIT, retry_after=exc.seconds, telegram_error=name)
    for cls, code in _KNOWN_ERRORS:
        if isinstance(exc, cls):
            return GatewayError(code, telegram_error=name)
    if isinstance(exc, _DEAD_SESSION):
        return AccountUnusable(ErrorCode.TELEGRAM_UNAVAILABLE, telegram_error=name)
    if isinstance(exc, errors.RPCError):
        return GatewayError(ErrorCode.INTERNAL, telegram_error=getattr(exc, "message", name))
    if isinstance(exc, ConnectionError | OSError | TimeoutError | asyncio.TimeoutError):
        return GatewayError(ErrorCode.TELEGRAM_UNAVAILABLE, telegram_error=name)
    return GatewayError(ErrorCode.INTERNAL, telegram_error=name)


def _withdraw(client: TelegramClient, request: Any) -> None:
    """Drop ``request`` from the client's send queue and from the requests it would resend.

    Telethon 1.45 keeps an unanswered request (queued, or sent but unanswered when the
    connection dropped) and sends it again once it reconnects, even if its caller gave up.
    """
    sender = client._sender

    def ours(state: Any) -> bool:
        sent = state.request
        return sent is request or getattr(sent, "query", None) is request

    queue = sender._send_queue._deque
    for state in [state for state in queue if ours(state)]:
        queue.remove(state)
        state.future.cancel()
    for msg_id, state in list(sender._pending_state.items()):
        if ours(state):
            sender._pending_state.pop(msg_id, None)
            state.future.cancel()


class TelethonGateway(TelegramGateway):
    """Telegram over Telethon; point ``server`` at a sandbox or a test DC, or leave it empty for
    Telegram's production servers."""

    settings_options = (
        "server",
        "public_key_file",
        "api_id",
        "api_hash",
        "dc_id",
        "request_timeout",
    )

    def __init__(
        self,
        *,
        server: str = "",
        public_key_file: str = "",
        api_id: int = 0,
        api_hash: str = "",
        dc_id: int = 2,
        request_timeout: float = 30,
    ) -> None:
        # The sandbox accepts any application; Telethon refuses to start without one.
        self.api_id = api_id or 1
        self.api_hash = api_hash or "sandbox"
        self.server = server
        self.dc_id = dc_id
        self.request_timeout = request_timeout
        key_path = public_key_file
        if key_path and key_path not in _added_keys:
            # Telethon only uses a key whose fingerprint the server advertises, so adding the
            # sandbox's (or a test DC's) key leaves production keys untouched.
            rsa.add_key(Path(key_path).read_text(), old=False)
            _added_keys.add(key_path)
        self._clients: dict[int, TelegramClient] = {}
        self._supervisors: dict[int, asyncio.Task[None]] = {}
        self._logins: dict[str, tuple[TelegramClient, str, str]] = {}
        self._login_timers: dict[str, asyncio.TimerHandle] = {}
        self._expiring: set[asyncio.Task[None]] = set()
        self._bot: TelegramClient | None = None
        self._bot_supervisor: asyncio.Task[None] | None = None

    def _client(self, session: str, *, receive_updates: bool = False) -> TelegramClient:
        client = TelegramClient(
            StringSession(session),
            self.api_id,
            self.api_hash,
            receive_updates=receive_updates,
            flood_sleep_threshold=0,
            raise_last_call_error=True,
            request_retries=2,
            connection_retries=3,
            retry_delay=1,
            timeout=10,
            device_model="passportsite verification",
            app_version="0.1",
        )
        if self.server:
            # TELEGRAM_SERVER is the authority for every session, saved ones included, so a
            # restarted sandbox on a new port (or a test DC) keeps its accounts reachable.
            host, _, port = self.server.rpartition(":")
            dc_id = client.session.dc_id or self.dc_id
            client.session.set_dc(dc_id, host.strip("[]"), int(port))
        return client

    async def _call(self, client: TelegramClient, request: Any) -> Any:
        """Send ``request``; when it times out or its caller gives up, withdraw it."""
        try:
            return await asyncio.wait_for(client(request), self.request_timeout)
        except BaseException as exc:
            if isinstance(exc, TimeoutError | asyncio.CancelledError):
                # Given up: take the request back, or Telethon sends it after a reconnect.
                _withdraw(client, request)
            if not isinstance(exc, Exception):
                raise
            error = translate_error(exc)
            if error.code is ErrorCode.FLOOD_WAIT:
                # Telethon would refuse every later request of this type on this client, for any
                # phone number, without asking Telegram; the worker keeps its own per-number wait.
                client._flood_waited_requests.pop(request.CONSTRUCTOR_ID, None)
            raise error from exc

    async def _guard(self, awaitable: Awaitable[T]) -> T:
        try:
            return await asyncio.wait_for(awaitable, self.request_timeout)
        except Exception as exc:
            raise translate_error(exc) from exc

    # Sender accounts ------------------------------------------------------------------------

    async def open(self, account_id: int, session: str) -> None:
        await self.close(account_id)
        client = self._client(session)
        await self._guard(client.connect())
        try:
            authorized = await self._guard(client.is_user_authorized())
        except GatewayError:
            await client.disconnect()
            raise
        if not authorized:
            await client.disconnect()
            raise AccountUnusable(ErrorCode.TELEGRAM_UNAVAILABLE, telegram_error="NOT_AUTHORIZED")
        self._clients[account_id] = client
        self._supervisors[account_id] = asyncio.create_task(self._supervise(account_id, client))

    async def _supervise(self, account_id: int, client: TelegramClient) -> None:
        """Reconnect a client whose connection Telethon gave up on, with backoff."""
        delay = 1.0
        while self._clients.get(account_id) is client:
            try:
                await client.disconnected  # type: ignore[union-attr]  # `is` narrows untyped Telethon's Any to Any | None
            except Exception as exc:
                logger.warning("Sender account %s lost its connection: %r", account_id, exc)
            if self._clients.get(account_id) is not client:
                return
            await asyncio.sleep(delay)
            try:
                await client.connect()  # type: ignore[union-attr]  # `is` narrows untyped Telethon's Any to Any | None
                delay = 1.0
                logger.info("Sender account %s reconnected", account_id)
            except Exception as exc:
                logger.warning("Sender account %s could not reconnect: %r", account_id, exc)
                delay = min(delay * 2, 60.0)

    async def close(self, account_id: int) -> None:
        client = self._clients.pop(account_id, None)
        supervisor = self._supervisors.pop(account_id, None)
        if supervisor is not None:
            supervisor.cancel()
        if client is not None:
            await client.disconnect()

    async def close_all(self) -> None:
        await self.bot_close()
        for account_id in list(self._clients):
            await self.close(account_id)
        for login_id in list(self._logins):
            await self.login_abort(login_id)

    def is_open(self, account_id: int) -> bool:
        return account_id in self._clients

    def _account(self, account_id: int) -> TelegramClient:
        try:
            return self._clients[account_id]
        except KeyError:
            raise GatewayError(
                ErrorCode.TELEGRAM_UNAVAILABLE, telegram_error="ACCOUNT_NOT_CONNECTED"
            ) from None

    # Passport phone verification ------------------------------------------------------------

    async def send_verify_code(self, account_id: int, phone_number: str) -> SentCode:
        request = functions.account.SendVerifyPhoneCodeRequest(
            phone_number=phone_number, settings=types.CodeSettings(allow_missed_call=True)
        )
        sent = await self._call(self._account(account_id), request)
        return sent_code_from_telegram(sent)

    async def resend_code(
        self,
        account_id: int,
        phone_number: str,
        phone_code_hash: str,
    ) -> SentCode:
        request = functions.auth.ResendCodeRequest(
            phone_number=phone_number, phone_code_hash=phone_code_hash
        )
        sent = await self._call(self._account(account_id), request)
        return sent_code_from_telegram(sent)

    async def verify_phone(
        self,
        account_id: int,
        phone_number: str,
        phone_code_hash: str,
        code: str,
    ) -> None:
        request = functions.account.VerifyPhoneRequest(
            phone_number=phone_number, phone_code_hash=phone_code_hash, phone_code=code
        )
        await self._call(self._account(account_id), request)

    async def cancel_code(
        self,
        account_id: int,
        phone_number: str,
        phone_code_hash: str,
    ) -> None:
        request = functions.auth.CancelCodeRequest(
            phone_number=phone_number, phone_code_hash=phone_code_hash
        )
        await self._call(self._account(account_id), request)

    # Signing in sender accounts -------------------------------------------------------------

    async def login_send_code(self, login_id: str, phone_number: str) -> SentCode:
        await self.login_abort(login_id)
        client = self._client("")
        await self._guard(client.connect())
        try:
            request = functions.auth.SendCodeRequest(
                phone_number=phone_number,
                api_id=self.api_id,
                api_hash=self.api_hash,
                settings=types.CodeSettings(),
            )
            sent = sent_code_from_telegram(await self._call(client, request))
        except BaseException:
            await client.disconnect()
            raise
        self._logins[login_id] = (client, phone_number, sent.phone_code_hash)
        # A sign-in nobody finishes is dropped, with its connection, once its code is stale.
        self._login_timers[login_id] = asyncio.get_running_loop().call_later(
            LOGIN_LIFETIME, self._login_expired, login_id, client
        )
        return sent

    def _login_expired(self, login_id: str, client: TelegramClient) -> None:
        entry = self._logins.get(login_id)
        if entry is not None and entry[0] is client:
            task = asyncio.ensure_future(self.login_abort(login_id))
            self._expiring.add(task)
            task.add_done_callback(self._expiring.discard)

    def _login(self, login_id: str) -> tuple[TelegramClient, str, str]:
        try:
            return self._logins[login_id]
        except KeyError:
            raise GatewayError(ErrorCode.NO_ACTIVE_VERIFICATION) from None

    async def _finish_login(self, login_id: str, user: Any) -> LoginResult:
        client, phone_number, _ = self._logins.pop(login_id)
        self._cancel_login_timer(login_id)
        session = StringSession.save(client.session)
        await client.disconnect()
        name = " ".join(filter(None, [user.first_name, user.last_name]))
        return LoginResult(
            session=session,
            user_id=user.id,
            phone_number=phone_number,
            display_name=name or (user.username or ""),
        )

    async def login_sign_in(self, login_id: str, code: str) -> LoginResult:
        client, phone_number, phone_code_hash = self._login(login_id)
        try:
            user = await asyncio.wait_for(
                client.sign_in(phone_number, code, phone_code_hash=phone_code_hash),
                self.request_timeout,
            )
        except errors.SessionPasswordNeededError as exc:
            raise PasswordNeeded() from exc
        except Exception as exc:
            raise translate_error(exc) from exc
        return await self._finish_login(login_id, user)

    async def login_password(self, login_id: str, password: str) -> LoginResult:
        client, _, _ = self._login(login_id)
        user = await self._guard(client.sign_in(password=password))
        return await self._finish_login(login_id, user)

    def _cancel_login_timer(self, login_id: str) -> None:
        timer = self._login_timers.pop(login_id, None)
        if timer is not None:
            timer.cancel()

    async def login_abort(self, login_id: str) -> None:
        entry = self._logins.pop(login_id, None)
        self._cancel_login_timer(login_id)
        if entry is not None:
            await entry[0].disconnect()

    # The Telegram Passport bot -------------------------------------------------------------

    async def bot_open(
        self,
        token: str,
        session: str,
        on_passport: Callable[[SharedPassport], Awaitable[None]],
    ) -> str:
        await self.bot_close()
        # The one client that receives updates: the shared data arrives as a service message.
        client = self._client(session, receive_updates=True)

        async def received(update: Any) -> None:
            shared = shared_passport_from_telegram(update)
            if shared is not None:
                await on_passport(shared)

        client.add_event_handler(received, events.Raw(types.UpdateNewMessage))
        try:
            await self._guard(client.connect())
            if not await self._guard(client.is_user_authorized()):
                await self._guard(client.sign_in(bot_token=token))
        except BaseException:
            await client.disconnect()
            raise
        self._bot = client
        self._bot_supervisor = asyncio.create_task(self._supervise_bot(client))
        return StringSession.save(client.session)

    async def _supervise_bot(self, client: TelegramClient) -> None:
        delay = 1.0
        while self._bot is client:
            with contextlib.suppress(Exception):
                await client.disconnected  # type: ignore[union-attr]  # `is` narrows untyped Telethon's Any to Any | None
            if self._bot is not client:
                return
            await asyncio.sleep(delay)
            try:
                await client.connect()
                delay = 1.0
            except Exception as exc:
                logger.warning("The Passport bot could not reconnect: %r", exc)
                delay = min(delay * 2, 60.0)

    async def bot_close(self) -> None:
        client, self._bot = self._bot, None
        if self._bot_supervisor is not None:
            self._bot_supervisor.cancel()
            self._bot_supervisor = None
        if client is not None:
            await client.disconnect()

    def bot_is_open(self) -> bool:
        return self._bot is not None

    async def log_out(self, session: str) -> None:
        client = self._client(session)
        try:
            await self._guard(client.connect())
            await self._guard(client.log_out())
        finally:
            if client.is_connected():
                await client.disconnect()
