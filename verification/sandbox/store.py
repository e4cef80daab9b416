"""Accounts, auth keys and the optional JSON state file of a sandbox server."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
import time
from dataclasses import dataclass, field
from pathlib import Path

from telethon.extensions import BinaryReader
from telethon.tl import types

from .crypto import SALT_PERIOD, ServerKey, auth_key_id
from .passport import plain_value, type_name
from .phones import PASSPORT_HOLDS_PHONE, e164, passport_scenario
from .srp import PasswordVerifier, SrpChallenge

logger = logging.getLogger("verification.sandbox")

STATE_VERSION = 1


@dataclass
class Account:
    """A sandbox user. Every valid number is one; its id is derived from the number."""

    digits: str
    user_id: int
    password: PasswordVerifier | None = None
    #: A bot: its token and the public key its owner gave BotFather (never persisted).
    bot_token: str = ""
    bot_public_key: str = ""
    #: The user's Telegram Passport: its values by type (``SecureValueTypePhone``, …).
    passport: dict[str, types.SecureValue] = field(default_factory=dict)
    #: Numbers this user proved with account.verifyPhone (what saveSecureValue asks of a phone).
    verified_phones: set[str] = field(default_factory=set)

    def as_user(self, *, is_self: bool) -> types.User:
        if self.bot_token:
            return types.User(
                id=self.user_id,
                is_self=is_self or None,
                bot=True,
                access_hash=self.user_id ^ 0x5A5A5A5A5A5A,
                first_name="Sandbox bot",
                username=f"sandbox{self.user_id}bot",
                bot_info_version=1,
            )
        return types.User(
            id=self.user_id,
            is_self=is_self or None,
            access_hash=self.user_id ^ 0x5A5A5A5A5A5A,
            first_name="Sandbox",
            last_name=self.digits[-4:],
            phone=self.digits,
            status=types.UserStatusEmpty(),
        )


def user_id_for(digits: str) -> int:
    """Deterministic, so the same number is the same user across restarts and machines."""
    digest = hashlib.sha256(b"verification.sandbox:" + digits.encode()).digest()
    return 1_000_000_000 + int.from_bytes(digest[:5], "big") % 9_000_000_000


@dataclass
class AuthKeyRecord:
    """Server-side state of one auth key (shared by its byte-level aliases)."""

    key: bytes
    user_id: int | None = None
    expires_at: float | None = None  # temporary keys only; never persisted
    awaiting_password: int | None = None  # user id after SESSION_PASSWORD_NEEDED
    srp: SrpChallenge | None = None
    srp_user: int | None = None
    # The salt the key exchange yields (spec: auth_key); valid for one salt period, never
    # persisted (after a restart such a client gets bad_server_salt, as after any salt change).
    initial_salt: int | None = None
    initial_salt_until: float = 0.0
    # The TL layer the last invokeWithLayer on this key declared (None: never declared).
    layer: int | None = None

    def is_initial_salt(self, salt: int) -> bool:
        return salt == self.initial_salt and time.time() < self.initial_salt_until

    @property
    def key_id(self) -> int:
        return auth_key_id(self.key)


class Store:
    """In-memory tables, mirrored to ``state_file`` (when given) after every change."""

    def __init__(self, state_file: str | os.PathLike[str] | None) -> None:
        self.path = Path(state_file) if state_file is not None else None
        self.accounts: dict[str, Account] = {}
        self.users: dict[int, Account] = {}
        self.bots: dict[str, Account] = {}
        self.records: list[AuthKeyRecord] = []
        self._by_key_id: dict[int, tuple[bytes, AuthKeyRecord]] = {}
        self.salt_secret = secrets.token_bytes(32)
        self.private_key_pem: str | None = None
        if self.path is not None and self.path.exists():
            self._load()

    # --- accounts ------------------------------------------------------------------------

    def account(self, digits: str, *, default_password: str | None = None) -> Account:
        """The account for a number, created on first use (Telegram's test numbers behave so)."""
        account = self.accounts.get(digits)
        if account is None:
            password = PasswordVerifier.create(default_password) if default_password else None
            account = Account(digits, user_id_for(digits), password)
            if passport_scenario(digits) == PASSPORT_HOLDS_PHONE:
                phone = plain_value(types.SecurePlainPhone(phone=digits))
                account.passport[type_name(phone.type)] = phone
            self.accounts[digits] = account
            self.users[account.user_id] = account
            self.save()
        return account

    def add_bot(self, token: str, public_key_pem: str) -> Account:
        """Register a bot (what @BotFather does); its id is the token's first part."""
        bot_id = int(token.partition(":")[0])
        bot = Account("", bot_id, bot_token=token, bot_public_key=public_key_pem)
        self.bots[token] = bot
        self.users[bot_id] = bot
        return bot

    def save_secure_value(self, account: Account, value: types.SecureValue) -> None:
        account.passport[type_name(value.type)] = value
        self.save()

    def delete_secure_values(self, account: Account, kinds: list[object]) -> None:
        for kind in kinds:
            account.passport.pop(type_name(kind), None)
        self.save()

    def set_password(self, digits: str, password: str | None) -> Account:
        account = self.account(digits)
        account.password = PasswordVerifier.create(password) if password else None
        self.save()
        return account

    # --- auth keys -----------------------------------------------------------------------

    def add_auth_key(
        self, key: bytes, *, expires_at: float | None = None, initial_salt: int | None = None
    ) -> AuthKeyRecord:
        record = AuthKeyRecord(key=key, expires_at=expires_at, initial_salt=initial_salt)
        if initial_salt is not None:
            record.initial_salt_until = time.time() + SALT_PERIOD
        self.records.append(record)
        self._register(record)
        if expires_at is None:
            self.save()
        return record

    def _register(self, record: AuthKeyRecord) -> None:
        variants = [record.key]
        if len(record.key) < 256:
            # Telethon may hold a 255-byte key (no left padding). Its StringSession pads that to
            # 256 bytes on the right, a spec-strict client pads on the left: accept both, so a
            # saved session keeps working.
            missing = 256 - len(record.key)
            variants += [record.key + bytes(missing), bytes(missing) + record.key]
        for variant in variants:
            self._by_key_id[auth_key_id(variant)] = (variant, record)

    def lookup(self, key_id: int) -> tuple[bytes, AuthKeyRecord] | None:
        return self._by_key_id.get(key_id)

    def forget(self, record: AuthKeyRecord) -> None:
        self.records = [r for r in self.records if r is not record]
        self._by_key_id = {k: v for k, v in self._by_key_id.items() if v[1] is not record}
        self.save()

    # --- persistence ---------------------------------------------------------------------

    def save(self) -> None:
        if self.path is None:
            return
        data = {
            "version": STATE_VERSION,
            "rsa_private_key": self.private_key_pem,
            "salt_secret": self.salt_secret.hex(),
            "accounts": [
                {
                    "phone": e164(a.digits),
                    "user_id": a.user_id,
                    "password": a.password.to_json() if a.password else None,
                    "passport": [bytes(value).hex() for value in a.passport.values()],
                }
                for a in self.accounts.values()
            ],
            "auth_keys": [
                {"key": r.key.hex(), "user_id": r.user_id, "layer": r.layer}
                for r in self.records
                if r.expires_at is None
            ],
        }
        tmp = self.path.with_name(self.path.name + ".tmp")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(data, indent=1))
        os.replace(tmp, self.path)

    def _load(self) -> None:
        assert self.path is not None
        data = json.loads(self.path.read_text())
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"{self.path}: unsupported sandbox state version")
        self.private_key_pem = data.get("rsa_private_key")
        self.salt_secret = bytes.fromhex(data["salt_secret"])
        for item in data.get("accounts", []):
            digits = item["phone"].lstrip("+")
            password = item.get("password")
            account = Account(
                digits,
                int(item["user_id"]),
                PasswordVerifier.from_json(password) if password else None,
            )
            for raw in item.get("passport", []):
                value = BinaryReader(bytes.fromhex(raw)).tgread_object()
                account.passport[type_name(value.type)] = value
            self.accounts[digits] = account
            self.users[account.user_id] = account
        for item in data.get("auth_keys", []):
            record = AuthKeyRecord(
                key=bytes.fromhex(item["key"]),
                user_id=item.get("user_id"),
                layer=item.get("layer"),
            )
            self.records.append(record)
            self._register(record)
        logger.info(
            "Sandbox: loaded %d account(s) and %d auth key(s) from %s",
            len(self.accounts),
            len(self.records),
            self.path,
        )

    def set_server_key(self, key: ServerKey) -> None:
        self.private_key_pem = key.private_pem
        self.save()
