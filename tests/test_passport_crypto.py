"""Telegram Passport crypto: the sandbox encrypts as a Telegram app does, the site decrypts."""

from __future__ import annotations

import json
from urllib.parse import parse_qs, urlsplit

import pytest

from verification import passport
from verification.passport import PassportRejected, SharedPassport, SharedValue
from verification.sandbox import passport as app

# Computed with `openssl enc -aes-256-cbc -nopad` from the key and IV that SHA-512(secret + hash)
# gives: an implementation independent of both sides.
KNOWN_PLAIN = b'{"secure_data":{},"nonce":"known-answer"}'
KNOWN_PAD = bytes([39]) + bytes(range(1, 39))
KNOWN_SECRET = bytes(range(32))
KNOWN_HASH = bytes.fromhex("bd67d8b7a93f77892469cd2281ef498c6b16fa6e1266bffd1e7199c5bbe6a96b")
KNOWN_DATA = bytes.fromhex(
    "4bb5a6dc2b57a4435d87c20edcd669716e009d1107eaab2ca99b59e4dd8f090ff6230acd01e33072bbc1c4cc"
    "4302d1762277876c4788ad973060a3eca9820cca87517bf91451faa775881f8dcdc0f16c"
)


@pytest.fixture(scope="module")
def key():
    return passport.private_key_generate()


def _shared(action) -> SharedPassport:
    values = tuple(
        SharedValue(
            type="phone" if hasattr(v.plain_data, "phone") else "email",
            plain=getattr(v.plain_data, "phone", "") or getattr(v.plain_data, "email", ""),
            hash=v.hash,
        )
        for v in action.values
    )
    credentials = action.credentials
    return SharedPassport(values, credentials.data, credentials.hash, credentials.secret)


def test_known_answer_encrypts_to_the_vector():
    data, data_hash, secret = app.encrypt_data(KNOWN_PLAIN, secret=KNOWN_SECRET, pad=KNOWN_PAD)
    assert (data, data_hash, secret) == (KNOWN_DATA, KNOWN_HASH, KNOWN_SECRET)


def test_known_answer_decrypts_from_the_vector():
    assert passport.data_decrypt(KNOWN_DATA, KNOWN_SECRET, KNOWN_HASH) == KNOWN_PLAIN


def test_the_site_decrypts_what_the_app_sends(key):
    action = app.secure_values_sent(
        phone_digits="9996612345", public_key_pem=passport.public_key_pem(key), nonce="n-1"
    )
    shared = _shared(action)
    credentials = passport.credentials_decrypt(key, shared)
    assert passport.credentials_nonce(credentials) == "n-1"
    assert passport.shared_phone(shared) == "9996612345"


@pytest.mark.parametrize("field", ["data", "hash"])
def test_every_flipped_byte_is_rejected(key, field):
    public = passport.public_key_pem(key)
    plain_length = len(app.secure_values_sent(phone_digits="1", public_key_pem=public, nonce="x")
                       .credentials.data)  # fmt: skip
    length = plain_length if field == "data" else 32
    for index in range(length):
        tampering = app.Tampering(**{f"flip_{field}_byte": index})
        action = app.secure_values_sent(
            phone_digits="9996612345", public_key_pem=public, nonce="x", tampering=tampering
        )
        with pytest.raises(PassportRejected) as caught:
            passport.credentials_decrypt(key, _shared(action))
        assert caught.value.reason == "HASH_MISMATCH", index


def test_a_flipped_secret_byte_is_rejected(key):
    public = passport.public_key_pem(key)
    for index in (0, 100, 255):
        action = app.secure_values_sent(
            phone_digits="1",
            public_key_pem=public,
            nonce="x",
            tampering=app.Tampering(flip_secret_byte=index),
        )
        with pytest.raises(PassportRejected) as caught:
            passport.credentials_decrypt(key, _shared(action))
        assert caught.value.reason == "KEY_MISMATCH"


def test_data_for_another_bot_key_is_rejected(key):
    other = passport.public_key_pem(passport.private_key_generate())
    action = app.secure_values_sent(
        phone_digits="1",
        public_key_pem=passport.public_key_pem(key),
        nonce="x",
        tampering=app.Tampering(wrong_key_pem=other),
    )
    with pytest.raises(PassportRejected) as caught:
        passport.credentials_decrypt(key, _shared(action))
    assert caught.value.reason == "KEY_MISMATCH"


def test_a_share_without_a_phone_is_rejected(key):
    action = app.secure_values_sent(
        phone_digits="1",
        public_key_pem=passport.public_key_pem(key),
        nonce="x",
        tampering=app.Tampering(no_phone=True),
    )
    with pytest.raises(PassportRejected) as caught:
        passport.shared_phone(_shared(action))
    assert caught.value.reason == "NO_PHONE"


def test_passport_1_0_payload_is_read_as_the_nonce():
    assert passport.credentials_nonce({"payload": "old"}) == "old"
    with pytest.raises(PassportRejected):
        passport.credentials_nonce({"secure_data": {}})


def test_request_url_carries_what_a_telegram_app_needs(key):
    public = passport.public_key_pem(key)
    url = passport.request_url(bot_id=42, public_key=public, nonce="abc")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc) == ("tg", "resolve")
    query = {name: values[0] for name, values in parse_qs(parts.query).items()}
    assert query["domain"] == "telegrampassport"
    assert query["bot_id"] == "42"
    assert json.loads(query["scope"]) == {"data": ["phone_number"], "v": 1}
    assert query["public_key"] == public
    assert query["nonce"] == "abc"


def test_qr_code_is_inline_svg():
    svg = passport.qr_svg("tg://resolve?domain=telegrampassport&nonce=abc")
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    assert "<?xml" not in svg


def test_bot_id_comes_from_the_token():
    assert passport.bot_id_from_token("123456:AAE-secret") == 123456
    for bad in ("", "abc:def", "123", "123:"):
        with pytest.raises(ValueError):
            passport.bot_id_from_token(bad)
