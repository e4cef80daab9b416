"""The sandbox writes what it sends in the TL layer that a client declared."""

from __future__ import annotations

import struct

import pytest
from telethon.extensions import BinaryReader
from telethon.tl import types

from verification.sandbox import layers
from verification.sandbox.connection import serialize_result

OLD_USER = {201: 0x020B1422, 216: 0x020B1422, 220: 0x31774388, 222: 0x31774388, 227: 0x31774388}


def _user() -> types.User:
    return types.User(
        id=1234567890,
        is_self=True,
        access_hash=42,
        first_name="Sandbox",
        last_name="1234",
        phone="9996621234",
        status=types.UserStatusEmpty(),
    )


@pytest.mark.parametrize("layer", [201, 216, 220, 222, 227, 228, 229])
def test_user_is_written_in_the_declared_layers_form(layer):
    user = _user()
    data = layers.serialize(types.auth.Authorization(user=user), layer)
    # auth.authorization (unchanged) + flags 0, then the user.
    assert data[:8] == bytes(types.auth.Authorization(user=user))[:8]
    (constructor,) = struct.unpack("<I", data[8:12])
    assert constructor == OLD_USER.get(layer, types.User.CONSTRUCTOR_ID)
    # The sandbox sets no field that a newer layer added, so only the constructor differs.
    assert data[12:] == bytes(user)[4:]
    with BinaryReader(bytes(types.User.CONSTRUCTOR_ID.to_bytes(4, "little")) + data[12:]) as r:
        assert r.tgread_object().phone == "9996621234"


def test_vectors_and_unchanged_objects():
    user = _user()
    vector = layers.serialize(types.updates.State(pts=1, qts=0, date=0, seq=1, unread_count=0), 222)
    assert vector == bytes(types.updates.State(pts=1, qts=0, date=0, seq=1, unread_count=0))
    data = serialize_result([user, user], 222)
    assert struct.unpack("<IiI", data[:12]) == (0x1CB5C415, 2, 0x31774388)
    assert data.count(struct.pack("<I", 0x31774388)) == 2


def test_undeclared_and_unsupported_layers():
    assert layers.answer_layer(None) == layers.OLDEST_LAYER  # the oldest served
    assert layers.answer_layer(150) == layers.OLDEST_LAYER
    assert layers.answer_layer(218) == 220  # between two schemas that differ: the next one
    assert layers.answer_layer(300) == layers.CURRENT_LAYER == 229
    assert 222 in layers.SUPPORTED_LAYERS and 218 not in layers.SUPPORTED_LAYERS
    assert layers.served_ranges() == "201-216, 220-229"


def test_older_forms_name_only_attributes_telethon_has():
    for current, forms in layers.OLDER_FORMS.items():
        for form in forms:
            cls = next(
                c for c in vars(types).values() if getattr(c, "CONSTRUCTOR_ID", 0) == current
            )
            missing = {a.attribute for a in form.args if a.type != "#"} - set(
                cls.__init__.__code__.co_varnames
            )
            assert not missing, (form.name, missing)
