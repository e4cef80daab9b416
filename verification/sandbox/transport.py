"""MTProto TCP transports: full, intermediate, padded intermediate, abridged, and the obfuscated
form of the last three.

The server detects the transport from the first bytes a client sends and answers in the same one.
See https://core.telegram.org/mtproto/mtproto-transports and
https://core.telegram.org/mtproto/mtproto-transports#transport-obfuscation.
"""

from __future__ import annotations

import asyncio
import os
import struct
from zlib import crc32

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

INTERMEDIATE_TAG = b"\xee\xee\xee\xee"
PADDED_INTERMEDIATE_TAG = b"\xdd\xdd\xdd\xdd"
ABRIDGED_TAG = 0xEF
OBFUSCATED_ABRIDGED_TAG = b"\xef\xef\xef\xef"

# Telegram caps a packet at about 1 MiB; anything much bigger is garbage (or an unsupported
# transport such as the obfuscated one) and the connection is dropped.
MAX_PACKET = 2 * 1024 * 1024


class TransportError(Exception):
    """The byte stream does not follow the transport; the connection must be closed."""


class Packet:
    """One transport packet, plus whether the client asked for a quick ack."""

    __slots__ = ("payload", "quick_ack")

    def __init__(self, payload: bytes, quick_ack: bool = False) -> None:
        self.payload = payload
        self.quick_ack = quick_ack


class Transport:
    """Base class: reads packets from and frames packets for one TCP connection."""

    name = "abstract"

    async def read_packet(self, reader: asyncio.StreamReader) -> Packet:
        raise NotImplementedError

    def frame(self, payload: bytes) -> bytes:
        raise NotImplementedError

    def frame_quick_ack(self, token: int) -> bytes | None:
        """Bytes that acknowledge a packet at transport level, or None if unsupported."""
        return None


class FullTransport(Transport):
    """``len|seq|payload|crc32`` with per-direction sequence numbers."""

    name = "full"

    def __init__(self, first: bytes) -> None:
        self._first = first
        self._recv_seq = 0
        self._send_seq = 0

    async def read_packet(self, reader: asyncio.StreamReader) -> Packet:
        if self._first:
            header, self._first = self._first, b""
            header += await reader.readexactly(8 - len(header))
        else:
            header = await reader.readexactly(8)
        length, seq = struct.unpack("<ii", header)
        if length < 12 or length > MAX_PACKET:
            raise TransportError(f"bad full-transport length {length}")
        rest = await reader.readexactly(length - 8)
        payload, checksum = rest[:-4], struct.unpack("<I", rest[-4:])[0]
        if crc32(header + payload) != checksum:
            raise TransportError("bad crc32")
        if seq != self._recv_seq:
            raise TransportError(f"bad transport seq {seq}, expected {self._recv_seq}")
        self._recv_seq += 1
        return Packet(payload)

    def frame(self, payload: bytes) -> bytes:
        data = struct.pack("<ii", len(payload) + 12, self._send_seq) + payload
        self._send_seq += 1
        return data + struct.pack("<I", crc32(data))


class IntermediateTransport(Transport):
    """``len|payload`` after a one-off ``0xeeeeeeee`` tag."""

    name = "intermediate"

    def __init__(self, *, padded: bool = False) -> None:
        self._padded = padded
        if padded:
            self.name = "padded_intermediate"

    async def read_packet(self, reader: asyncio.StreamReader) -> Packet:
        (raw,) = struct.unpack("<I", await reader.readexactly(4))
        quick_ack = bool(raw & 0x80000000)
        length = raw & 0x7FFFFFFF
        if length > MAX_PACKET:
            raise TransportError(f"bad intermediate length {length}")
        payload = await reader.readexactly(length)
        if self._padded:
            payload = strip_padding(payload)
        return Packet(payload, quick_ack)

    def frame(self, payload: bytes) -> bytes:
        if self._padded:
            # The spec allows 0-15 bytes, but Telethon strips only `len % 4` of them (it reads
            # the rest as message data), so we send 0-3, which every client reads.
            payload += os.urandom(os.urandom(1)[0] % 4)
        return struct.pack("<i", len(payload)) + payload

    def frame_quick_ack(self, token: int) -> bytes | None:
        return struct.pack("<I", token | 0x80000000)


def strip_padding(payload: bytes) -> bytes:
    """Drop the 0-15 random bytes padded intermediate may append to an MTProto message.

    Padding is not marked, so the message's own layout says where it ends: an encrypted one is
    ``auth_key_id`` (8) + ``msg_key`` (16) + whole AES blocks, a plain one carries its length.
    """
    if len(payload) < 20:
        return payload
    if payload[:8] == bytes(8):
        (length,) = struct.unpack("<i", payload[16:20])
        end = 20 + length
        return payload[:end] if length >= 0 and end <= len(payload) else payload
    return payload[: 24 + (len(payload) - 24) // 16 * 16]


class AbridgedTransport(Transport):
    """Length in 4-byte words (1 or 4 bytes) after a one-off ``0xef`` tag."""

    name = "abridged"

    async def read_packet(self, reader: asyncio.StreamReader) -> Packet:
        first = (await reader.readexactly(1))[0]
        quick_ack = bool(first & 0x80)
        words = first & 0x7F
        if words == 0x7F:
            words = int.from_bytes(await reader.readexactly(3), "little")
        length = words * 4
        if length > MAX_PACKET:
            raise TransportError(f"bad abridged length {length}")
        return Packet(await reader.readexactly(length), quick_ack)

    def frame(self, payload: bytes) -> bytes:
        words = len(payload) // 4
        if words < 0x7F:
            return bytes([words]) + payload
        return b"\x7f" + words.to_bytes(3, "little") + payload

    def frame_quick_ack(self, token: int) -> bytes | None:
        return struct.pack(">I", token | 0x80000000)


class _DecryptingReader:
    """``readexactly`` through the client-to-server AES-CTR stream of an obfuscated connection."""

    def __init__(self, reader: asyncio.StreamReader, decryptor: object) -> None:
        self._reader = reader
        self._decryptor = decryptor

    async def readexactly(self, n: int) -> bytes:
        return self._decryptor.update(await self._reader.readexactly(n))  # type: ignore[attr-defined]


class ObfuscatedTransport(Transport):
    """Abridged, intermediate or padded intermediate inside AES-256-CTR after a 64-byte init.

    The client's random init holds its key (bytes 8-40) and IV (40-56); the server-to-client
    direction uses the same 48 bytes reversed. Bytes 56-60, once decrypted, name the transport.
    MTProxy secrets (which hash a secret into both keys) and fake TLS are not supported.
    """

    def __init__(self, init: bytes) -> None:
        reverse = init[8:56][::-1]
        self._decryptor = Cipher(algorithms.AES(init[8:40]), modes.CTR(init[40:56])).decryptor()
        self._encryptor = Cipher(algorithms.AES(reverse[:32]), modes.CTR(reverse[32:])).encryptor()
        tag = self._decryptor.update(init)[56:60]
        if tag == OBFUSCATED_ABRIDGED_TAG:
            self._inner: Transport = AbridgedTransport()
        elif tag == INTERMEDIATE_TAG:
            self._inner = IntermediateTransport()
        elif tag == PADDED_INTERMEDIATE_TAG:
            self._inner = IntermediateTransport(padded=True)
        else:
            raise TransportError(f"obfuscated init names no known transport (tag {tag.hex()})")
        self.name = f"obfuscated {self._inner.name}"
        self._reader: _DecryptingReader | None = None

    async def read_packet(self, reader: asyncio.StreamReader) -> Packet:
        if self._reader is None:
            self._reader = _DecryptingReader(reader, self._decryptor)
        return await self._inner.read_packet(self._reader)  # type: ignore[arg-type]

    def frame(self, payload: bytes) -> bytes:
        return self._encryptor.update(self._inner.frame(payload))

    def frame_quick_ack(self, token: int) -> bytes | None:
        ack = self._inner.frame_quick_ack(token)
        return None if ack is None else self._encryptor.update(ack)


async def detect_transport(reader: asyncio.StreamReader) -> Transport:
    """Tell the transport from the first bytes, as Telegram's servers do.

    ``0xef`` is abridged, ``0xeeeeeeee`` intermediate, ``0xdddddddd`` padded intermediate. Else
    the first 8 bytes are either a full-transport header, whose sequence number (bytes 4-8) is
    0 in a connection's first packet, or the start of an obfuscated init, which clients make
    sure is never that (nor any of the tags above, nor an HTTP verb).
    """
    first = await reader.readexactly(1)
    if first[0] == ABRIDGED_TAG:
        return AbridgedTransport()
    head = first + await reader.readexactly(3)
    if head == INTERMEDIATE_TAG:
        return IntermediateTransport()
    if head == PADDED_INTERMEDIATE_TAG:
        return IntermediateTransport(padded=True)
    if head in (b"POST", b"GET ", b"HEAD", b"OPTI"):
        raise TransportError("the HTTP transport is not supported")
    head += await reader.readexactly(4)
    if head[4:8] == bytes(4):
        return FullTransport(head)
    return ObfuscatedTransport(head + await reader.readexactly(56))


def transport_error(code: int) -> bytes:
    """The 4-byte payload a server sends for a transport error such as 404 (unknown key)."""
    return struct.pack("<i", -abs(code))
