"""One client TCP connection: transport framing, encryption and MTProto service messages.

Spec references: https://core.telegram.org/mtproto/description (message layout, msg_id and
seq_no rules) and https://core.telegram.org/mtproto/service_messages (everything that is not an
API call).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
import struct
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from telethon.errors import TypeNotFoundError
from telethon.extensions import BinaryReader
from telethon.tl import functions, types
from telethon.tl.core import GzipPacked
from telethon.tl.tlobject import TLRequest

from .crypto import decrypt_client_message, encrypt_server_message, quick_ack_token
from .errors import RpcFailure
from .handshake import Handshake, HandshakeError
from .layers import CURRENT_LAYER, SUPPORTED_LAYERS, answer_layer, serialize, served_ranges
from .transport import Transport, TransportError, detect_transport, transport_error

if TYPE_CHECKING:
    from .server import SandboxServer
    from .store import AuthKeyRecord

logger = logging.getLogger("verification.sandbox")

CONTAINER_ID = 0x73F1F8DC
MSGS_ACK_ID = types.MsgsAck.CONSTRUCTOR_ID
# The spec says ping/pong "do not require acknowledgments", so a ping is not content-related
# (Pyrogram sends it, and http_wait, with an even seq_no); Telethon sends them as odd
# content-related messages all the same. An msgs_ack is not content-related either, yet some
# clients send their lone acks with an odd seq_no. Telegram takes both parities for all of
# these, and so do we; their seq_no is not checked against the session's order either.
EITHER_PARITY_IDS = frozenset(
    {
        functions.PingRequest.CONSTRUCTOR_ID,
        functions.PingDelayDisconnectRequest.CONSTRUCTOR_ID,
        types.HttpWait.CONSTRUCTOR_ID,
        MSGS_ACK_ID,
    }
)
# Why a bad_msg_notification was sent (spec: service_messages), for the log.
BAD_MSG_REASONS = {
    16: "msg_id too low (more than 300 s old)",
    17: "msg_id too high (more than 30 s in the future)",
    18: "msg_id not divisible by 4",
    32: "seq_no lower than an earlier message's",
    34: "even seq_no expected (not content-related)",
    35: "odd seq_no expected (content-related)",
    64: "invalid container",
}
RPC_RESULT_ID = 0xF35C6D01
BOOL_TRUE = struct.pack("<I", 0x997275B5)
BOOL_FALSE = struct.pack("<I", 0xBC799737)
VECTOR_ID = 0x1CB5C415

# Limits from the spec: a client msg_id may be at most 300 s old or 30 s in the future.
MSG_TOO_OLD = 300
MSG_TOO_NEW = 30

WRAPPERS = (
    functions.InvokeWithLayerRequest,
    functions.InitConnectionRequest,
    functions.InvokeWithoutUpdatesRequest,
    functions.InvokeWithTakeoutRequest,
    functions.InvokeWithMessagesRangeRequest,
    functions.InvokeWithApnsSecretRequest,
    functions.InvokeWithGooglePlayIntegrityRequest,
    functions.InvokeWithReCaptchaRequest,
    functions.InvokeWithBusinessConnectionRequest,
)


def tl_name(request: object) -> str:
    """``functions.account.SendVerifyPhoneCodeRequest`` → ``"account.sendVerifyPhoneCode"``."""
    cls = type(request)
    name = cls.__name__.removesuffix("Request")
    name = name[:1].lower() + name[1:]
    namespace = cls.__module__.removeprefix("telethon.tl.functions").lstrip(".")
    return f"{namespace}.{name}" if namespace else name


def serialize_result(value: object, layer: int = CURRENT_LAYER) -> bytes:
    if isinstance(value, bool):
        return BOOL_TRUE if value else BOOL_FALSE
    if isinstance(value, list):
        return struct.pack("<Ii", VECTOR_ID, len(value)) + b"".join(
            serialize(v, layer) for v in value
        )
    return serialize(value, layer)


@dataclass
class Session:
    """Server-side state of one MTProto session (auth key + client-chosen session id)."""

    session_id: int
    announced: bool = False  # new_session_created sent
    sequence: int = 0  # content-related messages sent by the server so far
    max_msg_id: int = 0
    max_seqno: int = 0
    seen: deque[int] = field(default_factory=lambda: deque(maxlen=1000))
    pending: dict[int, asyncio.Task[None]] = field(default_factory=dict)

    def next_seqno(self, content_related: bool) -> int:
        if content_related:
            self.sequence += 1
            return self.sequence * 2 - 1
        return self.sequence * 2


@dataclass
class Outgoing:
    body: bytes
    content_related: bool = True
    response: bool = True


class ClientConnection:
    """Serves one TCP connection until the client leaves or the server drops it."""

    def __init__(
        self,
        server: SandboxServer,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> None:
        self.server = server
        self.reader = reader
        self.writer = writer
        self.transport: Transport | None = None
        self.handshake = Handshake(server.server_key)
        self._refused_keys: list[AuthKeyRecord] = []
        self.tasks: set[asyncio.Task[None]] = set()
        self._disconnect_timer: asyncio.TimerHandle | None = None
        self.peer = writer.get_extra_info("peername")
        self._unsupported_logged = False
        # (key, key id, record, session id) of the last message: where pushed updates go.
        self.latest: tuple[bytes, int, AuthKeyRecord, int] | None = None

    def declare_layer(self, record: AuthKeyRecord, layer: int) -> None:
        """invokeWithLayer: Telegram keeps the layer with the auth key and answers in it."""
        if layer not in SUPPORTED_LAYERS and not self._unsupported_logged:
            self._unsupported_logged = True
            logger.warning(
                "Sandbox: %s declared layer %d, which the sandbox does not serve; answering "
                "in layer %d (served: %s)",
                self.peer,
                layer,
                answer_layer(layer),
                served_ranges(),
            )
        if record.layer != layer:
            record.layer = layer
            self.server.store.save()

    # --- lifecycle -----------------------------------------------------------------------

    async def serve(self) -> None:
        try:
            self.transport = await detect_transport(self.reader)
            logger.debug("Sandbox: %s connected (%s transport)", self.peer, self.transport.name)
            while True:
                packet = await self.transport.read_packet(self.reader)
                await self._on_packet(packet.payload, packet.quick_ack)
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        except (TransportError, HandshakeError) as exc:
            logger.info("Sandbox: closing %s: %s", self.peer, exc)
        except Exception:
            logger.exception("Sandbox: unexpected error on %s", self.peer)
        finally:
            self.close()

    def close(self, abort: bool = False) -> None:
        for task in list(self.tasks):
            task.cancel()
        if self._disconnect_timer is not None:
            self._disconnect_timer.cancel()
        if abort:
            self.writer.transport.abort()
        else:
            self.writer.close()

    def _schedule_disconnect(self, delay: int) -> None:
        """ping_delay_disconnect: drop the connection unless another ping comes in time."""
        if self._disconnect_timer is not None:
            self._disconnect_timer.cancel()
        loop = asyncio.get_running_loop()
        self._disconnect_timer = loop.call_later(max(delay, 1), self.close, True)

    def _write(self, payload: bytes) -> None:
        if self.transport is None or self.writer.is_closing():
            return
        self.writer.write(self.transport.frame(payload))

    def push(self, update: object) -> bool:
        """Send an update (not an answer) to the session this client last used."""
        if self.latest is None or self.writer.is_closing():
            return False
        key, key_id, record, session_id = self.latest
        sender = _Sender(self, key, key_id, record, session_id)
        body = serialize(update, answer_layer(record.layer))
        sender.outbox.append(Outgoing(body, response=False))
        sender.flush()
        return True

    # --- packets -------------------------------------------------------------------------

    async def _on_packet(self, payload: bytes, quick_ack: bool) -> None:
        if len(payload) < 8:
            raise TransportError("packet too short")
        (key_id,) = struct.unpack("<Q", payload[:8])
        if key_id == 0:
            self._on_plain(payload)
        else:
            await self._on_encrypted(key_id, payload, quick_ack)

    def _on_plain(self, payload: bytes) -> None:
        if len(payload) < 20:
            raise TransportError("plain message too short")
        _, length = struct.unpack("<qi", payload[8:20])
        body = payload[20 : 20 + length]
        try:
            with BinaryReader(body) as reader:
                request = reader.tgread_object()
        except Exception as exc:
            raise HandshakeError(f"cannot parse plain message: {exc}") from exc
        answer, new_key = self.handshake.handle(request)
        if isinstance(answer, types.DhGenRetry):
            self.server.stats["dh_gen_retry"] += 1
        if new_key is not None:
            record = self.server.store.add_auth_key(
                new_key.key, expires_at=new_key.expires_at, initial_salt=new_key.salt
            )
            if new_key.refused:
                # Kept for a client that ignores dh_gen_retry; dropped once this connection
                # finishes another exchange (the retry, or Telethon's new exchange).
                self._refused_keys.append(record)
            else:
                for refused in self._refused_keys:
                    self.server.store.forget(refused)
                self._refused_keys.clear()
                self.server.stats["auth_keys_created"] += 1
            logger.debug("Sandbox: new auth key (%d bytes) for %s", len(new_key.key), self.peer)
        data = bytes(answer)
        msg_id = self.server.clock.next(response=True)
        self._write(struct.pack("<qqi", 0, msg_id, len(data)) + data)

    async def _on_encrypted(self, key_id: int, payload: bytes, quick_ack: bool) -> None:
        entry = self.server.store.lookup(key_id)
        if entry is not None and entry[1].expires_at and entry[1].expires_at < time.time():
            entry = None
        if entry is None:
            # Transport-level 404: the client must create a new auth key.
            self._write(transport_error(404))
            await self.writer.drain()
            raise TransportError("unknown auth key")
        key, record = entry
        plain = decrypt_client_message(key, payload[8:24], payload[24:])
        if plain is None or len(plain) < 32:
            raise TransportError("msg_key mismatch")
        salt, session_id, msg_id, seqno, length = struct.unpack("<qqqii", plain[:32])
        padding = len(plain) - 32 - length
        if length < 0 or length % 4 or not 12 <= padding <= 1024:
            raise TransportError("bad message length or padding")
        if quick_ack and self.transport is not None:
            ack = self.transport.frame_quick_ack(quick_ack_token(key, plain))
            if ack is not None and not self.writer.is_closing():
                self.writer.write(ack)
        body = plain[32 : 32 + length]
        self.latest = (key, key_id, record, session_id)
        sender = _Sender(self, key, key_id, record, session_id)
        sender.receive(salt, msg_id, seqno, body)


class _Sender:
    """Processes one decrypted message and sends what it produces, in one packet."""

    def __init__(
        self,
        connection: ClientConnection,
        key: bytes,
        key_id: int,
        record: AuthKeyRecord,
        session_id: int,
    ) -> None:
        self.connection = connection
        self.server = connection.server
        self.key = key
        self.key_id = key_id
        self.record = record
        self.session_id = session_id
        self.session = self.server.session(key_id, session_id)
        self.outbox: list[Outgoing] = []
        self.acks: list[int] = []

    # --- top level -----------------------------------------------------------------------

    def receive(self, salt: int, msg_id: int, seqno: int, body: bytes) -> None:
        constructor = struct.unpack("<I", body[:4])[0] if len(body) >= 4 else 0
        content_related = constructor not in (CONTAINER_ID, MSGS_ACK_ID)
        error = self._check_msg_id(msg_id)
        if error is None and constructor not in EITHER_PARITY_IDS:
            if content_related and seqno % 2 == 0:
                error = 35
            elif not content_related and seqno % 2 == 1:
                error = 34
        if error is not None:
            self._bad_msg(msg_id, seqno, error)
            self.flush()
            return
        if not self.server.salts.is_valid(self.key_id, salt) and not self.record.is_initial_salt(
            salt
        ):
            self.server.stats["bad_server_salt"] += 1
            # Clients start from salt 0, so that case is routine; any other salt is news.
            logger.log(
                logging.DEBUG if salt == 0 else logging.INFO,
                "Sandbox: bad_server_salt for msg_id %d from %s: salt %d is not current",
                msg_id,
                self.connection.peer,
                salt,
            )
            bad = types.BadServerSalt(
                bad_msg_id=msg_id,
                bad_msg_seqno=seqno,
                error_code=48,
                new_server_salt=self.server.salts.current(self.key_id),
            )
            self.outbox.append(Outgoing(bytes(bad), response=True))
            self.flush()
            return
        session = self.session
        if not session.announced:
            session.announced = True
            self.server.stats["new_session_created"] += 1
            created = types.NewSessionCreated(
                first_msg_id=msg_id,
                unique_id=secrets.randbits(63),
                server_salt=self.server.salts.current(self.key_id),
            )
            self.outbox.append(Outgoing(bytes(created), response=False))
        if msg_id in session.seen:
            if content_related:
                self.acks.append(msg_id)
            self.flush()
            return
        if msg_id > session.max_msg_id and constructor not in EITHER_PARITY_IDS:
            if session.max_msg_id and (
                seqno < session.max_seqno or (seqno == session.max_seqno and seqno % 2 == 1)
            ):
                self._bad_msg(msg_id, seqno, 32)
                self.flush()
                return
            session.max_msg_id, session.max_seqno = msg_id, seqno
        session.seen.append(msg_id)
        if constructor == CONTAINER_ID:
            self._container(msg_id, seqno, body)
        else:
            self._dispatch(msg_id, body)
        self.flush()

    def _check_msg_id(self, msg_id: int) -> int | None:
        if msg_id % 4:
            return 18
        now = time.time()
        sent = msg_id / 2**32
        if sent < now - MSG_TOO_OLD:
            return 16
        if sent > now + MSG_TOO_NEW:
            return 17
        return None

    def _bad_msg(self, msg_id: int, seqno: int, code: int) -> None:
        self.server.stats["bad_msg_notification"] += 1
        logger.info(
            "Sandbox: bad_msg_notification %d for msg_id %d seq_no %d from %s: %s",
            code,
            msg_id,
            seqno,
            self.connection.peer,
            BAD_MSG_REASONS.get(code, "refused"),
        )
        bad = types.BadMsgNotification(bad_msg_id=msg_id, bad_msg_seqno=seqno, error_code=code)
        self.outbox.append(Outgoing(bytes(bad), response=True))

    def _container(self, container_id: int, container_seqno: int, body: bytes) -> None:
        reader = BinaryReader(body[4:])
        try:
            count = reader.read_int()
            items = []
            for _ in range(count):
                msg_id, seqno, length = reader.read_long(), reader.read_int(), reader.read_int()
                items.append((msg_id, seqno, reader.read(length)))
        except Exception:
            self._bad_msg(container_id, container_seqno, 64)
            return
        for msg_id, seqno, inner in items:
            if msg_id in self.session.seen:
                continue  # a resent copy of something already handled
            if msg_id % 4:
                self._bad_msg(msg_id, seqno, 18)
            elif msg_id >= container_id:
                # The spec requires a container's msg_id to exceed those it holds.
                self._bad_msg(msg_id, seqno, 64)
            else:
                self.session.seen.append(msg_id)
                self._dispatch(msg_id, inner)

    # --- one message ---------------------------------------------------------------------

    def _dispatch(self, msg_id: int, body: bytes) -> None:
        try:
            with BinaryReader(body) as reader:
                obj = reader.tgread_object()
        except TypeNotFoundError as exc:
            logger.warning("Sandbox: unknown constructor %08x", exc.invalid_constructor_id)
            self._rpc_error(msg_id, RpcFailure(400, "INPUT_METHOD_INVALID"))
            return
        except Exception:
            self._rpc_error(msg_id, RpcFailure(400, "INPUT_FETCH_ERROR"))
            return
        if isinstance(obj, GzipPacked):
            self._dispatch(msg_id, obj.data)
            return
        self._service_or_call(msg_id, obj)

    def _service_or_call(self, msg_id: int, obj: object) -> None:
        after: list[int] = []
        wrapped = False
        # Clients may wrap anything, even service requests (Telethon adds invokeWithoutUpdates).
        while isinstance(obj, TLRequest):
            if isinstance(obj, functions.InvokeWithLayerRequest):
                self.connection.declare_layer(self.record, obj.layer)
            if isinstance(obj, functions.InvokeAfterMsgRequest):
                after.append(obj.msg_id)
            elif isinstance(obj, functions.InvokeAfterMsgsRequest):
                after.extend(obj.msg_ids)
            elif not isinstance(obj, WRAPPERS):
                break
            obj, wrapped = obj.query, True
        if not self._service(msg_id, obj, wrapped) and isinstance(obj, TLRequest):
            self._call(msg_id, obj, after)
        elif not isinstance(obj, TLRequest):
            logger.debug("Sandbox: ignoring %s", type(obj).__name__)

    def _service(self, msg_id: int, obj: object, wrapped: bool = False) -> bool:
        """Handle a service message (spec: service_messages); False for an API call."""
        server, connection = self.server, self.connection
        if isinstance(obj, types.MsgsAck):
            return True
        if isinstance(
            obj,
            types.HttpWait
            | types.MsgResendReq
            | types.MsgsAllInfo
            | types.MsgDetailedInfo
            | types.MsgNewDetailedInfo,
        ):
            # Content-related but unanswered: acknowledge so the client can forget them.
            self.acks.append(msg_id)
            return True
        if isinstance(obj, functions.PingRequest | functions.PingDelayDisconnectRequest):
            pong = types.Pong(msg_id=msg_id, ping_id=obj.ping_id)
            # Not content-related (no ack needed, spec: service_messages), so an even seq_no.
            self.outbox.append(Outgoing(bytes(pong), content_related=False))
            if isinstance(obj, functions.PingDelayDisconnectRequest):
                connection._schedule_disconnect(obj.disconnect_delay)
            return True
        if isinstance(obj, functions.GetFutureSaltsRequest):
            salts = server.salts.future(self.key_id, max(1, min(obj.num, 64)))
            answer = types.FutureSalts(
                req_msg_id=msg_id,
                now=int(time.time()),
                salts=[types.FutureSalt(s.valid_since, s.valid_until, s.salt) for s in salts],
            )
            self.outbox.append(Outgoing(bytes(answer)))
            return True
        if isinstance(obj, functions.DestroySessionRequest):
            existed = server.destroy_session(self.key_id, obj.session_id)
            answer = (types.DestroySessionOk if existed else types.DestroySessionNone)(
                session_id=obj.session_id
            )
            if wrapped:
                # Inside an invokeWith* wrapper it is an API call, answered as one; Telethon
                # (which wraps everything in invokeWithoutUpdates when it takes no updates)
                # would miss a bare answer to a wrapped request.
                self._rpc_result(msg_id, bytes(answer))
            else:
                # Telegram answers a plain destroy_session with a bare destroy_session_ok/none.
                self.outbox.append(Outgoing(bytes(answer)))
            return True
        if isinstance(obj, functions.DestroyAuthKeyRequest):
            server.store.forget(self.record)
            self.outbox.append(Outgoing(bytes(types.DestroyAuthKeyOk())))
            return True
        if isinstance(obj, types.MsgsStateReq):
            info = "".join(chr(4 if m in self.session.seen else 2) for m in obj.msg_ids)
            answer = types.MsgsStateInfo(req_msg_id=msg_id, info=info)
            self.outbox.append(Outgoing(bytes(answer)))
            return True
        if isinstance(obj, functions.RpcDropAnswerRequest):
            self._rpc_result(msg_id, bytes(types.RpcAnswerUnknown()))
            return True
        return False

    def _call(self, msg_id: int, request: TLRequest, after: list[int]) -> None:
        name = tl_name(request)
        delay = self.server._take_delay(name)
        waits = [self.session.pending[m] for m in after if m in self.session.pending]
        if not delay and not waits:
            self._rpc_answer(msg_id, request, name)
            return
        # A slow call must not hold up the others: acknowledge now, answer when done.
        self.acks.append(msg_id)
        task = asyncio.get_running_loop().create_task(
            self._later(msg_id, request, name, delay, waits)
        )
        self.session.pending[msg_id] = task
        self.connection.tasks.add(task)
        task.add_done_callback(self.connection.tasks.discard)

    async def _later(
        self,
        msg_id: int,
        request: TLRequest,
        name: str,
        delay: float,
        waits: list[asyncio.Task[None]],
    ) -> None:
        try:
            for waiting in waits:
                with contextlib.suppress(Exception, asyncio.CancelledError):
                    await asyncio.shield(waiting)
            if delay:
                await asyncio.sleep(delay)
            later = _Sender(self.connection, self.key, self.key_id, self.record, self.session_id)
            later._rpc_answer(msg_id, request, name)
            later.flush()
        finally:
            self.session.pending.pop(msg_id, None)

    def _rpc_answer(self, msg_id: int, request: TLRequest, name: str) -> None:
        try:
            result = self.server._invoke(self.record, request, name)
            data = serialize_result(result, answer_layer(self.record.layer))
        except RpcFailure as failure:
            self._rpc_error(msg_id, failure)
            return
        except Exception:
            logger.exception("Sandbox: %s failed", name)
            # Never 5xx: Telethon would retry it for seconds.
            self._rpc_error(msg_id, RpcFailure(400, "SANDBOX_INTERNAL_ERROR"))
            return
        self._rpc_result(msg_id, GzipPacked.gzip_if_smaller(True, data))

    def _rpc_error(self, msg_id: int, failure: RpcFailure) -> None:
        error = types.RpcError(error_code=failure.code, error_message=failure.message)
        self._rpc_result(msg_id, bytes(error))

    def _rpc_result(self, msg_id: int, data: bytes) -> None:
        self.outbox.append(Outgoing(struct.pack("<Iq", RPC_RESULT_ID, msg_id) + data))

    # --- output --------------------------------------------------------------------------

    def flush(self) -> None:
        messages = list(self.outbox)
        if self.acks:
            ack = bytes(types.MsgsAck(msg_ids=self.acks))
            messages.append(Outgoing(ack, content_related=False, response=False))
        self.outbox, self.acks = [], []
        if not messages:
            return
        clock, session = self.server.clock, self.session
        framed = []
        for message in messages:
            framed.append(
                (
                    clock.next(response=message.response),
                    session.next_seqno(message.content_related),
                    message.body,
                )
            )
        if len(framed) == 1:
            msg_id, seqno, body = framed[0]
        else:
            body = struct.pack("<Ii", CONTAINER_ID, len(framed)) + b"".join(
                struct.pack("<qii", m, s, len(b)) + b for m, s, b in framed
            )
            # A container's msg_id must be greater than those of the messages it holds.
            msg_id = clock.next(response=any(m.response for m in messages))
            seqno = session.next_seqno(False)
        salt = self.server.salts.current(self.key_id)
        plain = struct.pack("<qqqii", salt, self.session_id, msg_id, seqno, len(body)) + body
        self.connection._write(encrypt_server_message(self.key, self.key_id, plain))
