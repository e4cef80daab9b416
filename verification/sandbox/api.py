"""API methods the sandbox implements, with Telegram's semantics (layer of Telethon 1.45)."""

from __future__ import annotations

import hashlib
import json
import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from telethon.tl import functions, types

from . import passport
from .crypto import DH_PRIME_BYTES
from .errors import RpcFailure, unauthorized
from .phones import InvalidPhone, PhoneRules, normalize_phone
from .srp import SrpChallenge

if TYPE_CHECKING:
    from .server import SandboxServer
    from .store import Account, AuthKeyRecord

THIS_DC = 2


def _rules(phone: str) -> PhoneRules:
    try:
        return PhoneRules.for_phone(normalize_phone(phone))
    except InvalidPhone:
        raise RpcFailure(400, "PHONE_NUMBER_INVALID") from None


def _send_checks(rules: PhoneRules) -> None:
    if rules.send_error is not None:
        raise RpcFailure(*rules.send_error)


class SandboxApi:
    """Maps request classes to handlers ``(record, request) -> result``."""

    def __init__(self, server: SandboxServer) -> None:
        self.server = server
        self.handlers: dict[type, Callable[[AuthKeyRecord, Any], object]] = {
            functions.help.GetConfigRequest: self.get_config,
            functions.help.GetNearestDcRequest: self.get_nearest_dc,
            functions.users.GetUsersRequest: self.get_users,
            functions.updates.GetStateRequest: self.get_state,
            functions.updates.GetDifferenceRequest: self.get_difference,
            functions.auth.SendCodeRequest: self.send_code,
            functions.auth.ResendCodeRequest: self.resend_code,
            functions.auth.CancelCodeRequest: self.cancel_code,
            functions.auth.SignInRequest: self.sign_in,
            functions.auth.ImportBotAuthorizationRequest: self.import_bot_authorization,
            functions.auth.LogOutRequest: self.log_out,
            functions.auth.CheckPasswordRequest: self.check_password,
            functions.account.GetPasswordRequest: self.get_password,
            functions.account.SendVerifyPhoneCodeRequest: self.send_verify_phone_code,
            functions.account.VerifyPhoneRequest: self.verify_phone,
            functions.account.GetAuthorizationFormRequest: self.get_authorization_form,
            functions.account.AcceptAuthorizationRequest: self.accept_authorization,
            functions.account.SaveSecureValueRequest: self.save_secure_value,
            functions.account.GetAllSecureValuesRequest: self.get_all_secure_values,
            functions.account.DeleteSecureValueRequest: self.delete_secure_value,
        }

    def call(self, record: AuthKeyRecord, request: object) -> object:
        handler = self.handlers.get(type(request))
        if handler is None:
            raise RpcFailure(400, "METHOD_NOT_IMPLEMENTED")
        return handler(record, request)

    # --- helpers -------------------------------------------------------------------------

    def _me(self, record: AuthKeyRecord) -> Account:
        if record.user_id is None or record.user_id not in self.server.store.users:
            raise unauthorized()
        return self.server.store.users[record.user_id]

    def _authorized(self, record: AuthKeyRecord, account: Account) -> types.auth.Authorization:
        record.user_id = account.user_id
        record.awaiting_password = None
        record.srp = None
        self.server.store.save()
        return types.auth.Authorization(user=account.as_user(is_self=True))

    # --- help / users / updates ----------------------------------------------------------

    def get_config(self, record: AuthKeyRecord, request: object) -> types.Config:
        now = int(time.time())
        host = self.server.advertised_host
        options = [
            types.DcOption(id=dc, ip_address=host, port=self.server.port, ipv6=":" in host or None)
            for dc in range(1, 6)
        ]
        return types.Config(
            date=now,
            expires=now + 3600,
            test_mode=False,
            this_dc=THIS_DC,
            dc_options=options,
            dc_txt_domain_name="sandbox.invalid",
            chat_size_max=200,
            megagroup_size_max=200000,
            forwarded_count_max=100,
            online_update_period_ms=210000,
            offline_blur_timeout_ms=5000,
            offline_idle_timeout_ms=30000,
            online_cloud_timeout_ms=300000,
            notify_cloud_delay_ms=30000,
            notify_default_delay_ms=1500,
            push_chat_period_ms=60000,
            push_chat_limit=2,
            edit_time_limit=172800,
            revoke_time_limit=2147483647,
            revoke_pm_time_limit=2147483647,
            rating_e_decay=2419200,
            stickers_recent_limit=200,
            channels_read_media_period=604800,
            call_receive_timeout_ms=20000,
            call_ring_timeout_ms=90000,
            call_connect_timeout_ms=30000,
            call_packet_timeout_ms=10000,
            me_url_prefix="https://t.me/",
            caption_length_max=1024,
            message_length_max=4096,
            webfile_dc_id=4,
            tmp_sessions=None,
        )

    def get_nearest_dc(self, record: AuthKeyRecord, request: object) -> types.NearestDc:
        return types.NearestDc(country="ZZ", this_dc=THIS_DC, nearest_dc=THIS_DC)

    def get_users(
        self, record: AuthKeyRecord, request: functions.users.GetUsersRequest
    ) -> list[types.User]:
        me = self._me(record)
        users = []
        for wanted in request.id:
            if isinstance(wanted, types.InputUserSelf) or (
                isinstance(wanted, types.InputUser) and wanted.user_id == me.user_id
            ):
                users.append(me.as_user(is_self=True))
            elif isinstance(wanted, types.InputUser):
                other = self.server.store.users.get(wanted.user_id)
                if other is not None:
                    users.append(other.as_user(is_self=False))
        return users

    def get_state(self, record: AuthKeyRecord, request: object) -> types.updates.State:
        return self.server.updates.state(self._me(record).user_id)

    def get_difference(
        self, record: AuthKeyRecord, request: functions.updates.GetDifferenceRequest
    ) -> types.updates.Difference | types.updates.DifferenceEmpty:
        return self.server.updates.difference(self._me(record).user_id, request.pts)

    # --- codes ---------------------------------------------------------------------------

    def send_code(
        self, record: AuthKeyRecord, request: functions.auth.SendCodeRequest
    ) -> types.auth.SentCode:
        rules = _rules(request.phone_number)
        _send_checks(rules)
        return self.server.codes.send(key_id=record.key_id, rules=rules, purpose="login")

    def send_verify_phone_code(
        self, record: AuthKeyRecord, request: functions.account.SendVerifyPhoneCodeRequest
    ) -> types.auth.SentCode:
        self._me(record)
        rules = _rules(request.phone_number)
        _send_checks(rules)
        return self.server.codes.send(key_id=record.key_id, rules=rules, purpose="verify")

    def resend_code(
        self, record: AuthKeyRecord, request: functions.auth.ResendCodeRequest
    ) -> types.auth.SentCode:
        rules = _rules(request.phone_number)
        return self.server.codes.resend(
            key_id=record.key_id, rules=rules, phone_code_hash=request.phone_code_hash
        )

    def cancel_code(self, record: AuthKeyRecord, request: functions.auth.CancelCodeRequest) -> bool:
        rules = _rules(request.phone_number)
        self.server.codes.cancel(
            key_id=record.key_id, digits=rules.digits, phone_code_hash=request.phone_code_hash
        )
        return True

    def verify_phone(
        self, record: AuthKeyRecord, request: functions.account.VerifyPhoneRequest
    ) -> bool:
        me = self._me(record)
        rules = _rules(request.phone_number)
        self.server.codes.check(
            key_id=record.key_id,
            digits=rules.digits,
            phone_code_hash=request.phone_code_hash,
            code=request.phone_code,
            purpose="verify",
        )
        me.verified_phones.add(rules.digits)
        return True

    # --- Telegram Passport ---------------------------------------------------------------

    def _passport_bot(self, bot_id: int, public_key: str) -> Account:
        bot = self.server.store.users.get(bot_id)
        if bot is None or not bot.bot_token:
            raise RpcFailure(400, "BOT_INVALID")
        if public_key.strip() != bot.bot_public_key.strip():
            raise RpcFailure(400, "PUBLIC_KEY_INVALID")
        return bot

    def _scope(self, scope: str) -> list[types.TypeSecureRequiredType]:
        try:
            return passport.required_types(json.loads(scope))
        except ValueError:
            raise RpcFailure(400, "SCOPE_INVALID") from None

    def get_authorization_form(
        self, record: AuthKeyRecord, request: functions.account.GetAuthorizationFormRequest
    ) -> types.account.AuthorizationForm:
        me = self._me(record)
        bot = self._passport_bot(request.bot_id, request.public_key)
        wanted = self._scope(request.scope)
        names = set()
        for required in wanted:
            choices = (
                required.types
                if isinstance(required, types.SecureRequiredTypeOneOf)
                else [required]
            )
            names |= {passport.type_name(choice.type) for choice in choices}
        return types.account.AuthorizationForm(
            required_types=wanted,
            values=[value for name, value in me.passport.items() if name in names],
            errors=[],
            users=[bot.as_user(is_self=False)],
        )

    def accept_authorization(
        self, record: AuthKeyRecord, request: functions.account.AcceptAuthorizationRequest
    ) -> bool:
        me = self._me(record)
        bot = self._passport_bot(request.bot_id, request.public_key)
        self._scope(request.scope)
        values = []
        for sent in request.value_hashes:
            value = me.passport.get(passport.type_name(sent.type))
            if value is None or value.hash != sent.hash:
                raise RpcFailure(400, "VALUE_HASH_INVALID")
            values.append(value)
        action = types.MessageActionSecureValuesSentMe(
            values=values, credentials=request.credentials
        )
        self.server.send_to_bot(me, bot, action)
        return True

    def save_secure_value(
        self, record: AuthKeyRecord, request: functions.account.SaveSecureValueRequest
    ) -> types.SecureValue:
        me = self._me(record)
        given = request.value
        if any(
            (given.front_side, given.reverse_side, given.selfie, given.translation, given.files)
        ):
            raise RpcFailure(400, "SECURE_FILES_NOT_SUPPORTED")  # the sandbox keeps no files
        plain = given.plain_data
        if isinstance(given.type, types.SecureValueTypePhone):
            if not isinstance(plain, types.SecurePlainPhone):
                raise RpcFailure(400, "VALUE_TYPE_INVALID")
            digits = _rules(plain.phone).digits
            if digits not in me.verified_phones:
                raise RpcFailure(400, "PHONE_VERIFICATION_NEEDED")
            value = passport.plain_value(types.SecurePlainPhone(phone=digits))
        elif isinstance(given.type, types.SecureValueTypeEmail):
            if not isinstance(plain, types.SecurePlainEmail):
                raise RpcFailure(400, "VALUE_TYPE_INVALID")
            value = passport.plain_value(plain)
        elif given.data is not None and plain is None:
            value = types.SecureValue(
                type=given.type, hash=hashlib.sha256(given.data.data_hash).digest(), data=given.data
            )
        else:
            raise RpcFailure(400, "VALUE_TYPE_INVALID")
        self.server.store.save_secure_value(me, value)
        return value

    def get_all_secure_values(
        self, record: AuthKeyRecord, request: object
    ) -> list[types.SecureValue]:
        return list(self._me(record).passport.values())

    def delete_secure_value(
        self, record: AuthKeyRecord, request: functions.account.DeleteSecureValueRequest
    ) -> bool:
        self.server.store.delete_secure_values(self._me(record), list(request.types))
        return True

    # --- sign-in -------------------------------------------------------------------------

    def sign_in(
        self, record: AuthKeyRecord, request: functions.auth.SignInRequest
    ) -> types.auth.Authorization:
        rules = _rules(request.phone_number)
        self.server.codes.check(
            key_id=record.key_id,
            digits=rules.digits,
            phone_code_hash=request.phone_code_hash,
            code=request.phone_code,
            purpose="login",
        )
        account = self.server.store.account(rules.digits, default_password=rules.default_password)
        if account.password is not None:
            record.awaiting_password = account.user_id
            raise RpcFailure(401, "SESSION_PASSWORD_NEEDED")
        return self._authorized(record, account)

    def import_bot_authorization(
        self, record: AuthKeyRecord, request: functions.auth.ImportBotAuthorizationRequest
    ) -> types.auth.Authorization:
        bot = self.server.store.bots.get(request.bot_auth_token)
        if bot is None:
            raise RpcFailure(400, "ACCESS_TOKEN_INVALID")
        return self._authorized(record, bot)

    def _password_account(self, record: AuthKeyRecord) -> Account:
        user_id = record.awaiting_password or record.user_id
        account = self.server.store.users.get(user_id) if user_id is not None else None
        if account is None:
            raise unauthorized()
        return account

    def get_password(self, record: AuthKeyRecord, request: object) -> types.account.Password:
        account = self._password_account(record)
        new_algo = types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
            salt1=os.urandom(8),
            salt2=os.urandom(16),
            g=3,
            p=DH_PRIME_BYTES,
        )
        common = {
            "new_algo": new_algo,
            "new_secure_algo": types.SecurePasswordKdfAlgoPBKDF2HMACSHA512iter100000(
                salt=os.urandom(8)
            ),
            "secure_random": os.urandom(256),
        }
        if account.password is None:
            return types.account.Password(has_password=False, **common)
        challenge = SrpChallenge.create(account.password)
        record.srp, record.srp_user = challenge, account.user_id
        return types.account.Password(
            has_password=True,
            current_algo=account.password.algo(),
            srp_B=challenge.B_bytes,
            srp_id=challenge.srp_id,
            hint="sandbox",
            **common,
        )

    def check_password(
        self, record: AuthKeyRecord, request: functions.auth.CheckPasswordRequest
    ) -> types.auth.Authorization:
        account = self._password_account(record)
        check = request.password
        if account.password is None:
            raise RpcFailure(400, "PASSWORD_HASH_INVALID")
        if not isinstance(check, types.InputCheckPasswordSRP):
            raise RpcFailure(400, "PASSWORD_HASH_INVALID")
        challenge = record.srp
        if challenge is None or record.srp_user != account.user_id:
            raise RpcFailure(400, "SRP_ID_INVALID")
        if challenge.srp_id != check.srp_id:
            raise RpcFailure(400, "SRP_ID_INVALID")
        # One challenge, one attempt: a new B is issued by the next account.getPassword.
        record.srp = None
        if not challenge.check(account.password, check.A, check.M1):
            raise RpcFailure(400, "PASSWORD_HASH_INVALID")
        return self._authorized(record, account)

    def log_out(self, record: AuthKeyRecord, request: object) -> types.auth.LoggedOut:
        self._me(record)
        record.user_id = None
        record.awaiting_password = None
        self.server.store.save()
        return types.auth.LoggedOut()
