"""Answers in the TL layer a client declared.

Telethon 1.45's tables are layer 229's. A client that declares an older layer with
``invokeWithLayer`` reads its own, older constructors, so every object the sandbox sends whose
constructor changed since is written in the older form instead. `OLDER_FORMS` lists those
changes: for each constructor, the last layer that still used an older form and that form's TL
definition. Everything else the sandbox sends or reads has the same constructor in every
supported layer.

The table was generated from, and is checked against, the published TL schemas of layers 201,
214, 216, 220, 221, 222, 224, 225, 227, 228 and 229 (the ``main_api.tl`` that each Kurigram
2.2.x release carries); run ``python -m verification.sandbox.layers SCHEMA.tl...`` with those
files (each names its layer in a ``// LAYER N`` line) to check it again or to extend it.
Layers 223 and 226 lie between two schemas that agree on everything the sandbox uses, so they
are served too; 217-219 fall between 216 and 220, which differ in ``user``, and are not.
"""

from __future__ import annotations

import re
import struct
import sys
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from telethon.tl import types
from telethon.tl.alltlobjects import LAYER
from telethon.tl.tlobject import TLObject

# The layer Telethon's generated TL classes speak, the newest the sandbox serves.
CURRENT_LAYER: int = LAYER
OLDEST_LAYER = 201
SUPPORTED_LAYERS = frozenset(range(OLDEST_LAYER, 217)) | frozenset(range(220, CURRENT_LAYER + 1))

# (last layer using the form, its TL definition), oldest first per constructor.
OLDER_FORMS_TL: tuple[tuple[int, str], ...] = (
    (
        216,
        "user#20b1422 flags:# self:flags.10?true contact:flags.11?true "
        "mutual_contact:flags.12?true deleted:flags.13?true bot:flags.14?true "
        "bot_chat_history:flags.15?true bot_nochats:flags.16?true verified:flags.17?true "
        "restricted:flags.18?true min:flags.20?true bot_inline_geo:flags.21?true "
        "support:flags.23?true scam:flags.24?true apply_min_photo:flags.25?true "
        "fake:flags.26?true bot_attach_menu:flags.27?true premium:flags.28?true "
        "attach_menu_enabled:flags.29?true flags2:# bot_can_edit:flags2.1?true "
        "close_friend:flags2.2?true stories_hidden:flags2.3?true "
        "stories_unavailable:flags2.4?true contact_require_premium:flags2.10?true "
        "bot_business:flags2.11?true bot_has_main_app:flags2.13?true "
        "bot_forum_view:flags2.16?true id:long access_hash:flags.0?long "
        "first_name:flags.1?string last_name:flags.2?string username:flags.3?string "
        "phone:flags.4?string photo:flags.5?UserProfilePhoto status:flags.6?UserStatus "
        "bot_info_version:flags.14?int restriction_reason:flags.18?Vector<RestrictionReason> "
        "bot_inline_placeholder:flags.19?string lang_code:flags.22?string "
        "emoji_status:flags.30?EmojiStatus usernames:flags2.0?Vector<Username> "
        "stories_max_id:flags2.5?int color:flags2.8?PeerColor profile_color:flags2.9?PeerColor "
        "bot_active_users:flags2.12?int bot_verification_icon:flags2.14?long "
        "send_paid_messages_stars:flags2.15?long = User;",
    ),
    (
        227,
        "user#31774388 flags:# self:flags.10?true contact:flags.11?true "
        "mutual_contact:flags.12?true deleted:flags.13?true bot:flags.14?true "
        "bot_chat_history:flags.15?true bot_nochats:flags.16?true verified:flags.17?true "
        "restricted:flags.18?true min:flags.20?true bot_inline_geo:flags.21?true "
        "support:flags.23?true scam:flags.24?true apply_min_photo:flags.25?true "
        "fake:flags.26?true bot_attach_menu:flags.27?true premium:flags.28?true "
        "attach_menu_enabled:flags.29?true flags2:# bot_can_edit:flags2.1?true "
        "close_friend:flags2.2?true stories_hidden:flags2.3?true "
        "stories_unavailable:flags2.4?true contact_require_premium:flags2.10?true "
        "bot_business:flags2.11?true bot_has_main_app:flags2.13?true "
        "bot_forum_view:flags2.16?true bot_forum_can_manage_topics:flags2.17?true "
        "bot_can_manage_bots:flags2.18?true bot_guestchat:flags2.19?true "
        "bot_guard:flags2.20?true id:long access_hash:flags.0?long first_name:flags.1?string "
        "last_name:flags.2?string username:flags.3?string phone:flags.4?string "
        "photo:flags.5?UserProfilePhoto status:flags.6?UserStatus "
        "bot_info_version:flags.14?int restriction_reason:flags.18?Vector<RestrictionReason> "
        "bot_inline_placeholder:flags.19?string lang_code:flags.22?string "
        "emoji_status:flags.30?EmojiStatus usernames:flags2.0?Vector<Username> "
        "stories_max_id:flags2.5?RecentStory color:flags2.8?PeerColor "
        "profile_color:flags2.9?PeerColor bot_active_users:flags2.12?int "
        "bot_verification_icon:flags2.14?long send_paid_messages_stars:flags2.15?long = User;",
    ),
)

# What the sandbox builds and sends (results and the objects inside them) and what it reads
# (the methods it serves and their arguments), by TL name; the checker below compares these
# across layers.
SENT = (
    "config",
    "dcOption",
    "nearestDc",
    "user",
    "userStatusEmpty",
    "updates.state",
    "updates.differenceEmpty",
    "auth.sentCode",
    "auth.sentCodeTypeApp",
    "auth.sentCodeTypeSms",
    "auth.sentCodeTypeCall",
    "auth.sentCodeTypeFlashCall",
    "auth.sentCodeTypeMissedCall",
    "auth.sentCodeTypeFragmentSms",
    "auth.sentCodeTypeSmsWord",
    "auth.sentCodeTypeSmsPhrase",
    "auth.codeTypeSms",
    "auth.codeTypeCall",
    "auth.codeTypeFlashCall",
    "auth.codeTypeMissedCall",
    "auth.codeTypeFragmentSms",
    "auth.authorization",
    "auth.loggedOut",
    "account.password",
    "passwordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow",
    "securePasswordKdfAlgoPBKDF2HMACSHA512iter100000",
)
READ = (
    "invokeWithLayer",
    "initConnection",
    "invokeWithoutUpdates",
    "invokeAfterMsg",
    "invokeAfterMsgs",
    "help.getConfig",
    "help.getNearestDc",
    "users.getUsers",
    "updates.getState",
    "updates.getDifference",
    "auth.sendCode",
    "auth.resendCode",
    "auth.cancelCode",
    "auth.signIn",
    "auth.logOut",
    "auth.checkPassword",
    "account.getPassword",
    "account.sendVerifyPhoneCode",
    "account.verifyPhone",
    "codeSettings",
    "inputUserSelf",
    "inputUser",
    "inputCheckPasswordSRP",
    "inputCheckPasswordEmpty",
    "inputClientProxy",
    "jsonObject",
    "jsonObjectValue",
    "jsonString",
    "jsonNumber",
    "jsonBool",
    "jsonNull",
    "jsonArray",
)

_TL_LINE = re.compile(r"^([\w.]+)#([0-9a-f]+)\s*(.*?)\s*=\s*([\w.<>]+);$")
_ARG = re.compile(r"^(\w+):(?:(\w+)\.(\d+)\?)?(.+)$")
# TL argument names that Telethon renames on its classes.
_ATTRIBUTE = {"self": "is_self"}


@dataclass(frozen=True)
class Arg:
    name: str
    attribute: str
    type: str  # "#" for a flags field
    flag: tuple[str, int] | None  # (flags field, bit) for an optional argument


@dataclass(frozen=True)
class Form:
    """One TL constructor as an older layer writes it."""

    name: str
    constructor_id: int
    args: tuple[Arg, ...]
    last_layer: int

    @classmethod
    def parse(cls, line: str, last_layer: int) -> Form:
        match = _TL_LINE.match(line.strip())
        if match is None:
            raise ValueError(f"not a TL constructor: {line!r}")
        name, cid, args, _ = match.groups()
        parsed = []
        for token in args.split():
            arg = _ARG.match(token)
            if arg is None:
                raise ValueError(f"cannot parse TL argument {token!r}")
            arg_name, flags, bit, tl_type = arg.groups()
            parsed.append(
                Arg(
                    arg_name,
                    _ATTRIBUTE.get(arg_name, arg_name),
                    tl_type,
                    (flags, int(bit)) if flags else None,
                )
            )
        return cls(name, int(cid, 16), tuple(parsed), last_layer)

    def write(self, obj: TLObject, layer: int) -> bytes:
        values = {arg.attribute: getattr(obj, arg.attribute, None) for arg in self.args}
        flags: dict[str, int] = {}
        for arg in self.args:
            value = values[arg.attribute]
            if arg.flag is not None and value is not None and value is not False:
                flags[arg.flag[0]] = flags.get(arg.flag[0], 0) | 1 << arg.flag[1]
        out = [struct.pack("<I", self.constructor_id)]
        for arg in self.args:
            value = values[arg.attribute]
            if arg.type == "#":
                out.append(struct.pack("<I", flags.get(arg.name, 0)))
            elif arg.type != "true" and (
                arg.flag is None or (value is not None and value is not False)
            ):
                out.append(_write_value(arg.type, value, layer))
        return b"".join(out)


def _write_value(tl_type: str, value: object, layer: int) -> bytes:
    if tl_type.startswith("Vector<"):
        inner = tl_type[7:-1]
        items = list(value)  # type: ignore[call-overload]
        return struct.pack("<Ii", 0x1CB5C415, len(items)) + b"".join(
            _write_value(inner, item, layer) for item in items
        )
    if tl_type == "int":
        if isinstance(value, datetime):
            return TLObject.serialize_datetime(value)
        return struct.pack("<i", value)
    if tl_type == "long":
        return struct.pack("<q", value)
    if tl_type == "double":
        return struct.pack("<d", value)
    if tl_type in ("int128", "int256"):
        size = 16 if tl_type == "int128" else 32
        return value.to_bytes(size, "little", signed=True)  # type: ignore[attr-defined]
    if tl_type in ("string", "bytes"):
        return TLObject.serialize_bytes(value)
    if tl_type == "Bool":
        return b"\xb5ur\x99" if value else b"7\x97y\xbc"
    if not isinstance(value, TLObject):
        raise TypeError(f"a TL object was expected for {tl_type}, got {value!r}")
    return serialize(value, layer)


OLDER_FORMS: dict[int, tuple[Form, ...]] = {}
for _last, _line in OLDER_FORMS_TL:
    _form = Form.parse(_line, _last)
    _current = getattr(types, _form.name[:1].upper() + _form.name[1:]).CONSTRUCTOR_ID
    OLDER_FORMS[_current] = (*OLDER_FORMS.get(_current, ()), _form)


def served_ranges() -> str:
    """The supported layers as text, e.g. ``"201-216, 220-229"``."""
    ranges: list[list[int]] = []
    for layer in sorted(SUPPORTED_LAYERS):
        if ranges and ranges[-1][1] == layer - 1:
            ranges[-1][1] = layer
        else:
            ranges.append([layer, layer])
    return ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in ranges)


def answer_layer(declared: int | None) -> int:
    """The layer the sandbox answers in when a client declared ``declared`` (None: nothing).

    A client that never declared one gets the oldest layer served, a newer layer than the
    sandbox's gets its own, and any other layer the next one served.
    """
    if declared is None:
        return OLDEST_LAYER
    if declared >= CURRENT_LAYER:
        return CURRENT_LAYER
    return min(layer for layer in SUPPORTED_LAYERS if layer >= declared)


def _form_for(obj: TLObject, layer: int) -> Form | None:
    for form in OLDER_FORMS.get(getattr(obj, "CONSTRUCTOR_ID", 0), ()):
        if layer <= form.last_layer:
            return form
    return None


class _Written(TLObject):
    """Stands in for a child object inside Telethon's own serialisation of its parent."""

    def __init__(self, data: bytes) -> None:
        self._data = data

    def _bytes(self) -> bytes:
        return self._data


def _downgraded(value: object, layer: int) -> object:
    if isinstance(value, list):
        return [_downgraded(item, layer) for item in value]
    if isinstance(value, TLObject) and _needs_rewrite(value, layer):
        return _Written(serialize(value, layer))
    return value


def _needs_rewrite(obj: object, layer: int) -> bool:
    if isinstance(obj, list):
        return any(_needs_rewrite(item, layer) for item in obj)
    if not isinstance(obj, TLObject):
        return False
    if _form_for(obj, layer) is not None:
        return True
    return any(_needs_rewrite(value, layer) for value in vars(obj).values())


def serialize(obj: TLObject, layer: int) -> bytes:
    """``bytes(obj)`` as a client on ``layer`` reads it."""
    if layer >= CURRENT_LAYER or not _needs_rewrite(obj, layer):
        return bytes(obj)
    form = _form_for(obj, layer)
    if form is not None:
        return form.write(obj, layer)
    # Telethon writes the object; children that changed are written in their older form.
    copy = object.__new__(type(obj))
    copy.__dict__.update({k: _downgraded(v, layer) for k, v in vars(obj).items()})
    return bytes(copy)


# --- checking the table against published schemas ---------------------------------------------


def _read_schema(path: str) -> tuple[int, dict[str, str]]:
    layer = None
    definitions: dict[str, str] = {}
    with open(path, encoding="utf-8") as schema:
        for line in schema:
            line = line.strip()
            found = re.match(r"^//\s*LAYER\s+(\d+)", line)
            if found:
                layer = int(found.group(1))
            match = _TL_LINE.match(line)
            if match:
                definitions[match.group(1)] = line
    if layer is None:
        raise ValueError(f"{path}: no '// LAYER N' line")
    return layer, definitions


def check(paths: Iterable[str]) -> list[str]:
    """Compare `OLDER_FORMS` with schemas; returns the disagreements (empty when it matches)."""
    schemas = dict(_read_schema(path) for path in paths)
    problems = []
    for name in SENT + READ:
        history = []
        for layer in sorted(schemas):
            line = schemas[layer].get(name)
            history.append((layer, int(_TL_LINE.match(line).group(2), 16) if line else None))  # type: ignore[union-attr]
        current = history[-1][1]
        for layer, constructor_id in history:
            if constructor_id is None:
                problems.append(f"{name}: missing in layer {layer}")
                continue
            if name in READ:
                if constructor_id != current:
                    problems.append(f"{name}: read in layer {layer} as {constructor_id:08x}")
                continue
            served = _served_constructor(name, current, layer)
            if served != constructor_id:
                problems.append(
                    f"{name}: layer {layer} has {constructor_id:08x}, the sandbox sends "
                    f"{served:08x}: {schemas[layer][name]}"
                )
    return problems


def _served_constructor(name: str, current: int | None, layer: int) -> int | None:
    for forms in OLDER_FORMS.values():
        for form in forms:
            if form.name == name and layer <= form.last_layer:
                return form.constructor_id
    return current


if __name__ == "__main__":
    found = check(sys.argv[1:])
    print("\n".join(found) or "The table agrees with every schema given.")
    sys.exit(1 if found else 0)
