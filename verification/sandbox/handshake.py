"""Server side of the MTProto auth key exchange (https://core.telegram.org/mtproto/auth_key)."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass

from telethon.crypto import AES, AuthKey
from telethon.extensions import BinaryReader
from telethon.helpers import generate_key_data_from_nonce
from telethon.tl import functions, types
from telethon.tl.tlobject import TLObject

from .crypto import (
    DH_G,
    DH_PRIME,
    DH_PRIME_BYTES,
    ServerKey,
    decrypt_inner_data,
    dh_value_is_safe,
    int_to_bytes,
    make_pq,
)

INNER_DATA_TYPES = (
    types.PQInnerData,
    types.PQInnerDataDc,
    types.PQInnerDataTemp,
    types.PQInnerDataTempDc,
)


class HandshakeError(Exception):
    """The client broke the key exchange; the server closes the connection, as Telegram does."""


@dataclass
class NewAuthKey:
    """The result of a finished exchange."""

    key: bytes
    expires_at: float | None  # set for temporary keys (p_q_inner_data_temp*)
    salt: int | None = None  # the spec's first server salt: new_nonce[0:8] XOR server_nonce[0:8]
    # Answered with dh_gen_retry but kept: a client that ignores dh_gen_retry (Pyrogram and
    # its forks do) goes on with this key, which is the spec's 256 bytes on both sides.
    refused: bool = False


def key_needs_retry(key: bytes) -> bool:
    """A key starting with a zero byte: Telethon 1.45 would hold 255 bytes of it."""
    return key[0] == 0


def initial_salt(new_nonce: int, server_nonce: int) -> int:
    """server_salt = substr(new_nonce, 0, 8) XOR substr(server_nonce, 0, 8) (spec: auth_key)."""
    new = new_nonce.to_bytes(32, "little", signed=True)[:8]
    server = server_nonce.to_bytes(16, "little", signed=True)[:8]
    return int.from_bytes(
        bytes(a ^ b for a, b in zip(new, server, strict=True)), "little", signed=True
    )


@dataclass
class _Pending:
    nonce: int
    server_nonce: int
    pq: int
    p: int
    q: int
    new_nonce: int | None = None
    a: int | None = None
    tmp_key: bytes | None = None
    tmp_iv: bytes | None = None
    expires_in: int | None = None
    retries: int = 0


class Handshake:
    """The per-connection state machine for unencrypted messages.

    ``handle`` takes a deserialised request and returns the TL object to answer with, plus the
    finished key once ``set_client_DH_params`` succeeded.
    """

    def __init__(self, server_key: ServerKey) -> None:
        self._key = server_key
        self._pending: dict[int, _Pending] = {}

    def handle(self, request: object) -> tuple[TLObject, NewAuthKey | None]:
        if isinstance(request, functions.ReqPqMultiRequest | functions.ReqPqRequest):
            return self._req_pq(request), None
        if isinstance(request, functions.ReqDHParamsRequest):
            return self._req_dh_params(request), None
        if isinstance(request, functions.SetClientDHParamsRequest):
            return self._set_client_dh_params(request)
        raise HandshakeError(f"{type(request).__name__} is not allowed without an auth key")

    def _req_pq(self, request: functions.ReqPqMultiRequest) -> types.ResPQ:
        pq, p, q = make_pq()
        server_nonce = int.from_bytes(os.urandom(16), "little", signed=True)
        # Only the latest exchange per nonce matters; cap the table against a chatty client.
        if len(self._pending) > 8:
            self._pending.clear()
        self._pending[request.nonce] = _Pending(request.nonce, server_nonce, pq, p, q)
        return types.ResPQ(
            nonce=request.nonce,
            server_nonce=server_nonce,
            pq=int_to_bytes(pq),
            server_public_key_fingerprints=[self._key.fingerprint],
        )

    def _state(self, nonce: int, server_nonce: int) -> _Pending:
        state = self._pending.get(nonce)
        if state is None or state.server_nonce != server_nonce:
            raise HandshakeError("unknown nonce or server_nonce")
        return state

    def _req_dh_params(self, request: functions.ReqDHParamsRequest) -> object:
        state = self._state(request.nonce, request.server_nonce)
        if request.public_key_fingerprint != self._key.fingerprint:
            raise HandshakeError("unknown RSA key fingerprint")
        if (int.from_bytes(request.p, "big"), int.from_bytes(request.q, "big")) != (
            state.p,
            state.q,
        ):
            raise HandshakeError("wrong p/q")
        data = decrypt_inner_data(self._key, request.encrypted_data)
        if data is None:
            raise HandshakeError("cannot decrypt p_q_inner_data")
        with BinaryReader(data) as reader:
            inner = reader.tgread_object()
        if not isinstance(inner, INNER_DATA_TYPES):
            raise HandshakeError(f"unexpected inner data {type(inner).__name__}")
        if (inner.nonce, inner.server_nonce) != (state.nonce, state.server_nonce):
            raise HandshakeError("nonce mismatch in p_q_inner_data")
        if int.from_bytes(inner.pq, "big") != state.pq:
            raise HandshakeError("pq mismatch in p_q_inner_data")
        state.new_nonce = inner.new_nonce
        state.expires_in = getattr(inner, "expires_in", None)
        state.tmp_key, state.tmp_iv = generate_key_data_from_nonce(
            state.server_nonce, state.new_nonce
        )
        return self._server_dh_params(state)

    def _server_dh_params(self, state: _Pending) -> types.ServerDHParamsOk:
        while True:
            a = int.from_bytes(os.urandom(256), "big")
            g_a = pow(DH_G, a, DH_PRIME)
            if dh_value_is_safe(g_a):
                break
        state.a = a
        answer = bytes(
            types.ServerDHInnerData(
                nonce=state.nonce,
                server_nonce=state.server_nonce,
                g=DH_G,
                dh_prime=DH_PRIME_BYTES,
                g_a=int_to_bytes(g_a),
                server_time=int(time.time()),
            )
        )
        with_hash = hashlib.sha1(answer).digest() + answer
        with_hash += os.urandom(-len(with_hash) % 16)
        return types.ServerDHParamsOk(
            nonce=state.nonce,
            server_nonce=state.server_nonce,
            encrypted_answer=AES.encrypt_ige(with_hash, state.tmp_key, state.tmp_iv),
        )

    def _set_client_dh_params(
        self, request: functions.SetClientDHParamsRequest
    ) -> tuple[object, NewAuthKey | None]:
        state = self._state(request.nonce, request.server_nonce)
        if state.a is None or state.tmp_key is None or state.new_nonce is None:
            raise HandshakeError("set_client_DH_params before req_DH_params")
        if not request.encrypted_data or len(request.encrypted_data) % 16:
            raise HandshakeError("bad encrypted_data length")
        plain = AES.decrypt_ige(request.encrypted_data, state.tmp_key, state.tmp_iv)
        digest, body = plain[:20], plain[20:]
        with BinaryReader(body) as reader:
            inner = reader.tgread_object()
            length = reader.tell_position()
        if hashlib.sha1(body[:length]).digest() != digest:
            raise HandshakeError("bad sha1 in client_DH_inner_data")
        if not isinstance(inner, types.ClientDHInnerData):
            raise HandshakeError("expected client_DH_inner_data")
        if (inner.nonce, inner.server_nonce) != (state.nonce, state.server_nonce):
            raise HandshakeError("nonce mismatch in client_DH_inner_data")
        g_b = int.from_bytes(inner.g_b, "big")
        key = pow(g_b, state.a, DH_PRIME).to_bytes(256, "big")
        salt = initial_salt(state.new_nonce, state.server_nonce)
        expires_at = time.time() + state.expires_in if state.expires_in else None
        if key_needs_retry(key) and dh_value_is_safe(g_b):
            # The spec's key is 256 bytes, left-padded; Telethon 1.45 drops the leading zero.
            # Such a key (~1 in 256) would be different bytes on either side, so ask for a new
            # b (dh_gen_retry): a conforming client retries with it, Telethon redoes the
            # exchange. Every key that is used is then the same on both sides. A client that
            # ignores dh_gen_retry keeps the 256 bytes, so the key is kept for it (refused=True).
            retry_hash = AuthKey(key).calc_new_nonce_hash(state.new_nonce, 2)
            retry = types.DhGenRetry(state.nonce, state.server_nonce, retry_hash)
            return retry, NewAuthKey(key, expires_at, salt, refused=True)
        del self._pending[state.nonce]
        auth_key = AuthKey(key)
        if not dh_value_is_safe(g_b):
            fail_hash = auth_key.calc_new_nonce_hash(state.new_nonce, 3)
            return types.DhGenFail(state.nonce, state.server_nonce, fail_hash), None
        answer = types.DhGenOk(
            nonce=state.nonce,
            server_nonce=state.server_nonce,
            new_nonce_hash1=auth_key.calc_new_nonce_hash(state.new_nonce, 1),
        )
        return answer, NewAuthKey(key, expires_at, salt)
