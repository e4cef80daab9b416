"""A small MTProto client that frames every packet itself, for the sandbox's protocol tests.

It uses none of Telethon's transport, connection or sender code: the transports (full,
intermediate, padded intermediate with 0-15 bytes of padding, abridged and the obfuscated form of
the last three), msg_ids, seq_nos, salts, containers and the auth key exchange are written here
from core.telegram.org/mtproto. Telethon's TL classes serialise the requests, and its AES-IGE,
factorisation and nonce-key helpers do the arithmetic; everything else is this file's own, so a
test cannot pass just because Telethon happens to pad, ack or number messages the way the
sandbox expects.
"""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import hashlib
import os
import secrets
import struct
import time
from dataclasses import dataclass, field
from zlib import crc32

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes
from cryptography.hazmat.primitives.serialization import load_pem_public_key
from telethon.crypto import AES, Factorization
from telethon.extensions import BinaryReader
from telethon.helpers import generate_key_data_from_nonce
from telethon.tl import functions, types
from telethon.tl.tlobject import TLObject

TRANSPORTS = (
    "abridged",
    "intermediate",
    "padded_intermediate",
    "full",
    "obfuscated_abridged",
    "obfuscated_intermediate",
    "obfuscated_padded_intermediate",
)

RPC_RESULT = 0xF35C6D01
GZIP_PACKED = 0x3072CFA1
CONTAINER = 0x73F1F8DC
BAD_SERVER_SALT = types.BadServerSalt.CONSTRUCTOR_ID
BAD_MSG_NOTIFICATION = types.BadMsgNotification.CONSTRUCTOR_ID
PONG = types.Pong.CONSTRUCTOR_ID


# What an obfuscated init must not start with: it would read as another transport (spec).
FORBIDDEN_INIT_STARTS = (
    b"HEAD",
    b"POST",
    b"GET ",
    b"OPTI",
    b"\xdd" * 4,
    b"\xee" * 4,
    b"\x16\x03\x01\x02",
)


def _ctr(key: bytes, iv: bytes) -> Cipher:
    return Cipher(algorithms.AES(key), modes.CTR(iv))


class Framing:
    """One TCP transport, client side (core.telegram.org/mtproto/mtproto-transports)."""

    def __init__(self, name: str) -> None:
        if name not in TRANSPORTS:
            raise ValueError(name)
        self.obfuscated = name.startswith("obfuscated_")
        self.kind = name.removeprefix("obfuscated_")
        self._send_seq = self._recv_seq = 0
        self._encryptor = self._decryptor = None

    def opening(self) -> bytes:
        """What the client sends before its first packet."""
        tag = {
            "abridged": b"\xef\xef\xef\xef",
            "intermediate": b"\xee\xee\xee\xee",
            "padded_intermediate": b"\xdd\xdd\xdd\xdd",
        }.get(self.kind)
        if not self.obfuscated:
            return {"abridged": b"\xef", "full": b""}.get(self.kind, tag or b"")
        if tag is None:
            raise ValueError("full has no obfuscated form")
        while True:
            init = bytearray(os.urandom(64))
            if (
                init[0] != 0xEF
                and bytes(init[:4])
                not in (
                    b"HEAD",
                    b"POST",
                    b"GET ",
                    b"OPTI",
                    b"\xdd" * 4,
                    b"\xee" * 4,
                    b"\x16\x03\x01\x02",
                )
                and init[4:8] != bytes(4)
            ):
                break
        init[56:60] = tag
        reverse = bytes(init[8:56])[::-1]
        self._encryptor = Cipher(
            algorithms.AES(bytes(init[8:40])), modes.CTR(bytes(init[40:56]))
        ).encryptor()
        self._decryptor = Cipher(algorithms.AES(reverse[:32]), modes.CTR(reverse[32:])).decryptor()
        encrypted = self._encryptor.update(bytes(init))
        return bytes(init[:56]) + encrypted[56:]

    def frame(self, payload: bytes, padding: int | None = None) -> bytes:
        if self.kind == "abridged":
            words = len(payload) // 4
            head = bytes([words]) if words < 0x7F else b"\x7f" + words.to_bytes(3, "little")
            data = head + payload
        elif self.kind == "full":
            data = struct.pack("<ii", len(payload) + 12, self._send_seq) + payload
            data += struct.pack("<I", crc32(data))
            self._send_seq += 1
        else:
            if self.kind == "padded_intermediate":
                payload += os.urandom(secrets.randbelow(16) if padding is None else padding)
            data = struct.pack("<i", len(payload)) + payload
        return self._encryptor.update(data) if self._encryptor else data

    async def _read(self, reader: asyncio.StreamReader, n: int) -> bytes:
        data = await reader.readexactly(n)
        return self._decryptor.update(data) if self._decryptor else data

    async def read(self, reader: asyncio.StreamReader) -> bytes:
        if self.kind == "abridged":
            words = (await self._read(reader, 1))[0]
            if words == 0x7F:
                words = int.from_bytes(await self._read(reader, 3), "little")
            return await self._read(reader, words * 4)
        if self.kind == "full":
            header = await self._read(reader, 8)
            length, seq = struct.unpack("<ii", header)
            rest = await self._read(reader, length - 8)
            assert crc32(header + rest[:-4]) == struct.unpack("<I", rest[-4:])[0], "bad crc32"
            assert seq == self._recv_seq, "bad transport seq"
            self._recv_seq += 1
            return rest[:-4]
        (length,) = struct.unpack("<i", await self._read(reader, 4))
        payload = await self._read(reader, length)
        if self.kind == "padded_intermediate" and len(payload) > 4:
            # The message's own layout says where it ends (the server pads 0-15 bytes too).
            if payload[:8] == bytes(8):
                payload = payload[: 20 + struct.unpack("<i", payload[16:20])[0]]
            else:
                payload = payload[: 24 + (len(payload) - 24) // 16 * 16]
        return payload


def _kdf(auth_key: bytes, msg_key: bytes, x: int) -> tuple[bytes, bytes]:
    a = hashlib.sha256(msg_key + auth_key[x : x + 36]).digest()
    b = hashlib.sha256(auth_key[40 + x : 76 + x] + msg_key).digest()
    return a[:8] + b[8:24] + a[24:32], b[:8] + a[8:24] + b[24:32]


def _rsa_pad(n: int, e: int, data: bytes) -> bytes:
    """RSA_PAD from core.telegram.org/mtproto/auth_key."""
    while True:
        padded = data + os.urandom(192 - len(data))
        temp_key = os.urandom(32)
        with_hash = padded[::-1] + hashlib.sha256(temp_key + padded).digest()
        encrypted = AES.encrypt_ige(with_hash, temp_key, bytes(32))
        key_xor = bytes(
            a ^ b for a, b in zip(temp_key, hashlib.sha256(encrypted).digest(), strict=True)
        )
        value = int.from_bytes(key_xor + encrypted, "big")
        if value < n:
            return pow(value, e, n).to_bytes(256, "big")


def _tl_bytes(data: bytes) -> bytes:
    return TLObject.serialize_bytes(data)


@dataclass
class Message:
    msg_id: int
    seqno: int
    body: bytes

    @property
    def constructor(self) -> int:
        return struct.unpack("<I", self.body[:4])[0]


@dataclass
class RawClient:
    """``await RawClient.connect(host, port, public_key_pem, transport)``, then ``invoke``."""

    framing: Framing
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    n: int
    e: int
    fingerprint: int
    auth_key: bytes = b""
    salt: int = 0
    session_id: int = field(default_factory=lambda: secrets.randbits(63))
    received: list[Message] = field(default_factory=list)
    _last_msg_id: int = 0
    _content_sent: int = 0

    @classmethod
    async def connect(cls, host: str, port: int, public_key_pem: str, transport: str) -> RawClient:
        numbers = load_pem_public_key(public_key_pem.encode()).public_numbers()
        n_bytes = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
        e_bytes = numbers.e.to_bytes((numbers.e.bit_length() + 7) // 8, "big")
        digest = hashlib.sha1(_tl_bytes(n_bytes) + _tl_bytes(e_bytes)).digest()
        fingerprint = int.from_bytes(digest[-8:], "little", signed=True)
        reader, writer = await asyncio.open_connection(host, port)
        framing = Framing(transport)
        writer.write(framing.opening())
        client = cls(framing, reader, writer, numbers.n, numbers.e, fingerprint)
        await client._exchange_key()
        return client

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()

    # --- msg_id / seq_no -------------------------------------------------------------------

    def new_msg_id(self) -> int:
        msg_id = int(time.time() * 2**32) & ~3
        if msg_id <= self._last_msg_id:
            msg_id = self._last_msg_id + 4
        self._last_msg_id = msg_id
        return msg_id

    def seqno(self, content_related: bool) -> int:
        if content_related:
            self._content_sent += 1
            return self._content_sent * 2 - 1
        return self._content_sent * 2

    # --- unencrypted messages and the key exchange -----------------------------------------

    async def _plain(self, request: TLObject) -> TLObject:
        body = bytes(request)
        self._send(struct.pack("<qqi", 0, self.new_msg_id(), len(body)) + body)
        payload = await self.framing.read(self.reader)
        assert payload[:8] == bytes(8), f"expected a plain answer, got {payload[:8].hex()}"
        (length,) = struct.unpack("<i", payload[16:20])
        with BinaryReader(payload[20 : 20 + length]) as reader:
            return reader.tgread_object()

    async def _exchange_key(self) -> None:
        nonce = int.from_bytes(os.urandom(16), "little", signed=True)
        res_pq = await self._plain(functions.ReqPqMultiRequest(nonce=nonce))
        assert self.fingerprint in res_pq.server_public_key_fingerprints
        pq = int.from_bytes(res_pq.pq, "big")
        p, q = sorted(Factorization.factorize(pq))
        p_bytes, q_bytes = (x.to_bytes((x.bit_length() + 7) // 8, "big") for x in (p, q))
        new_nonce = int.from_bytes(os.urandom(32), "little", signed=True)
        inner = types.PQInnerDataDc(
            pq=res_pq.pq,
            p=p_bytes,
            q=q_bytes,
            nonce=nonce,
            server_nonce=res_pq.server_nonce,
            new_nonce=new_nonce,
            dc=2,
        )
        dh_params = await self._plain(
            functions.ReqDHParamsRequest(
                nonce=nonce,
                server_nonce=res_pq.server_nonce,
                p=p_bytes,
                q=q_bytes,
                public_key_fingerprint=self.fingerprint,
                encrypted_data=_rsa_pad(self.n, self.e, bytes(inner)),
            )
        )
        assert isinstance(dh_params, types.ServerDHParamsOk), dh_params
        key, iv = generate_key_data_from_nonce(res_pq.server_nonce, new_nonce)
        answer = AES.decrypt_ige(dh_params.encrypted_answer, key, iv)
        with BinaryReader(answer[20:]) as reader:
            dh_inner = reader.tgread_object()
        dh_prime = int.from_bytes(dh_inner.dh_prime, "big")
        g_a = int.from_bytes(dh_inner.g_a, "big")
        new_nonce_bytes = new_nonce.to_bytes(32, "little", signed=True)
        retry_id = 0
        for _ in range(5):
            b = secrets.randbits(2048)
            g_b = pow(dh_inner.g, b, dh_prime)
            client_inner = bytes(
                types.ClientDHInnerData(
                    nonce=nonce,
                    server_nonce=res_pq.server_nonce,
                    retry_id=retry_id,
                    g_b=g_b.to_bytes(256, "big"),
                )
            )
            data = hashlib.sha1(client_inner).digest() + client_inner
            data += os.urandom(-len(data) % 16)
            answer = await self._plain(
                functions.SetClientDHParamsRequest(
                    nonce=nonce,
                    server_nonce=res_pq.server_nonce,
                    encrypted_data=AES.encrypt_ige(data, key, iv),
                )
            )
            auth_key = pow(g_a, b, dh_prime).to_bytes(256, "big")  # the spec's 256 bytes
            aux_hash = hashlib.sha1(auth_key).digest()[:8]
            if isinstance(answer, types.DhGenRetry):
                retry_id = int.from_bytes(aux_hash, "little", signed=True)
                continue
            assert isinstance(answer, types.DhGenOk), answer
            expected = hashlib.sha1(new_nonce_bytes + b"\x01" + aux_hash).digest()[4:20]
            assert answer.new_nonce_hash1 == int.from_bytes(expected, "little", signed=True)
            self.auth_key = auth_key
            server_nonce_bytes = res_pq.server_nonce.to_bytes(16, "little", signed=True)
            self.salt = int.from_bytes(
                bytes(
                    a ^ b for a, b in zip(new_nonce_bytes[:8], server_nonce_bytes[:8], strict=True)
                ),
                "little",
                signed=True,
            )
            return
        raise AssertionError("the key exchange did not finish")

    # --- encrypted messages ----------------------------------------------------------------

    def _send(self, payload: bytes, padding: int | None = None) -> None:
        self.writer.write(self.framing.frame(payload, padding))

    def send(
        self,
        body: bytes,
        *,
        content_related: bool = True,
        seqno: int | None = None,
        msg_id: int | None = None,
        padding: int | None = None,
    ) -> int:
        """Encrypt and send one message; returns its msg_id."""
        msg_id = msg_id or self.new_msg_id()
        seqno = self.seqno(content_related) if seqno is None else seqno
        plain = struct.pack("<qqqii", self.salt, self.session_id, msg_id, seqno, len(body)) + body
        plain += os.urandom(12 + (-(len(plain) + 12) % 16))
        msg_key = hashlib.sha256(self.auth_key[88:120] + plain).digest()[8:24]
        key, iv = _kdf(self.auth_key, msg_key, 0)
        key_id = hashlib.sha1(self.auth_key).digest()[-8:]
        self._send(key_id + msg_key + AES.encrypt_ige(plain, key, iv), padding)
        return msg_id

    async def receive(self) -> list[Message]:
        """Read one packet; returns its messages (containers unpacked), also kept in .received."""
        payload = await self.framing.read(self.reader)
        if len(payload) == 4:
            raise ConnectionError(f"transport error {struct.unpack('<i', payload)[0]}")
        msg_key = payload[8:24]
        key, iv = _kdf(self.auth_key, msg_key, 8)
        plain = AES.decrypt_ige(payload[24:], key, iv)
        assert hashlib.sha256(self.auth_key[96:128] + plain).digest()[8:24] == msg_key
        _, session_id, msg_id, seqno, length = struct.unpack("<qqqii", plain[:32])
        assert session_id == self.session_id
        assert msg_id % 4 in (1, 3), "server msg_ids are odd"
        messages = [Message(msg_id, seqno, plain[32 : 32 + length])]
        if messages[0].constructor == CONTAINER:
            body, messages = messages[0].body, []
            (count,) = struct.unpack("<i", body[4:8])
            offset = 8
            for _ in range(count):
                inner_id, inner_seqno, inner_len = struct.unpack("<qii", body[offset : offset + 16])
                messages.append(
                    Message(inner_id, inner_seqno, body[offset + 16 : offset + 16 + inner_len])
                )
                offset += 16 + inner_len
        self.received.extend(messages)
        return messages

    async def exchange(
        self, body: bytes, *, content_related: bool = True, padding: int | None = None
    ) -> Message:
        """Send a request and return the answer to it: an rpc_result's result (gunzipped),
        a pong, or a bare answer naming the request (destroy_session_ok/none).

        Resends after bad_server_salt, as the spec asks; fails on bad_msg_notification.
        """
        msg_id = self.send(body, content_related=content_related, padding=padding)
        while True:
            for message in await self.receive():
                body_id = message.constructor
                if body_id == BAD_SERVER_SALT:
                    bad = _read(message.body)
                    if bad.bad_msg_id == msg_id:
                        self.salt = bad.new_server_salt
                        msg_id = self.send(body, content_related=content_related, padding=padding)
                elif body_id == BAD_MSG_NOTIFICATION:
                    raise AssertionError(f"bad_msg_notification {_read(message.body)}")
                elif body_id == RPC_RESULT:
                    (req_msg_id,) = struct.unpack("<q", message.body[4:12])
                    if req_msg_id == msg_id:
                        result = message.body[12:]
                        if struct.unpack("<I", result[:4])[0] == GZIP_PACKED:
                            with BinaryReader(result[4:]) as reader:
                                result = gzip.decompress(reader.tgread_bytes())
                        return Message(message.msg_id, message.seqno, result)
                elif (
                    body_id == PONG
                    and _read(message.body).msg_id == msg_id
                    or body_id
                    in (
                        types.DestroySessionOk.CONSTRUCTOR_ID,
                        types.DestroySessionNone.CONSTRUCTOR_ID,
                    )
                ):
                    return message

    async def invoke(self, request: TLObject, *, padding: int | None = None) -> TLObject:
        """exchange() and read the answer with Telethon's (layer 229) tables; RPC errors raise."""
        answer = await self.exchange(bytes(request), padding=padding)
        result = _read(answer.body)
        if isinstance(result, types.RpcError):
            raise RpcErrorRaised(result.error_code, result.error_message)
        return result


class RpcErrorRaised(Exception):
    def __init__(self, code: int, message: str) -> None:
        super().__init__(f"{code} {message}")
        self.code, self.message = code, message


def _read(data: bytes) -> TLObject:
    with BinaryReader(data) as reader:
        return reader.tgread_object()
