"""System checks: what ``manage.py check`` tells a host developer about a bad VERIFICATION."""

from __future__ import annotations

from io import StringIO

import pytest
from django.core.checks import ERROR, WARNING, run_checks
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from verification.checks import (
    check_telegram_configured,
    check_telegram_configured_for_deployment,
)

IN_MEMORY = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
REDIS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer", "CONFIG": {}}}
REDIS_CACHE = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache"}}
CREDENTIALS = {"TELEGRAM_API_ID": 123456, "TELEGRAM_API_HASH": "0123456789abcdef"}


@pytest.fixture
def configure(settings):
    """``configure(**verification)``: an otherwise healthy embedded setup with these keys."""
    settings.DEBUG = True
    settings.CHANNEL_LAYERS = IN_MEMORY

    def apply(**verification):
        settings.VERIFICATION = verification
        return settings

    return apply


def check_settings(*, deploy=False):
    """What ``manage.py check`` (``--deploy``) reports about the app."""
    return [
        message
        for message in run_checks(include_deployment_checks=deploy)
        if message.id and message.id.startswith("verification.")
    ]


def only(messages):
    """The single message reported, as (id, msg)."""
    assert len(messages) == 1, [(m.id, m.msg) for m in messages]
    return messages[0]


def test_embedded_defaults_pass(configure):
    configure(EMBEDDED_SANDBOX=True)
    assert check_settings() == []


def test_credentials_without_sandbox_pass(configure):
    configure(**CREDENTIALS)
    assert check_settings() == []


def test_separate_workers_on_redis_pass(configure, settings):
    configure(EMBEDDED_WORKER=False, **CREDENTIALS)
    settings.CHANNEL_LAYERS = REDIS
    settings.CACHES = REDIS_CACHE
    assert check_settings() == []


def test_checks_are_registered_with_django(configure):
    configure(EMBEDDED_SANDBOX=True, SURPRISE=1)
    ids = [m.id for m in run_checks() if m.id and m.id.startswith("verification.")]
    assert ids == ["verification.E002"]


def test_verification_must_be_a_dict(configure, settings):
    configure()
    settings.VERIFICATION = [("EMBEDDED_SANDBOX", True)]
    message = only(check_settings())
    assert message.id == "verification.E001"
    assert message.level == ERROR
    assert message.msg == "The VERIFICATION setting must be a dict."


def test_unknown_key(configure):
    configure(EMBEDDED_SANDBOX=True, MAX_ATTEMTPS=3)
    message = only(check_settings())
    assert message.id == "verification.E002"
    assert message.msg == "VERIFICATION has an unknown key 'MAX_ATTEMTPS'."
    assert "MAX_ATTEMPTS" in message.hint


@pytest.mark.parametrize(
    ("key", "value", "text"),
    [
        ("MAX_ATTEMPTS", "5", "VERIFICATION['MAX_ATTEMPTS'] must be int, not str."),
        ("EXPIRES_AFTER", True, "VERIFICATION['EXPIRES_AFTER'] must be int, not bool."),
        ("EMBEDDED_WORKER", "no", "VERIFICATION['EMBEDDED_WORKER'] must be bool, not str."),
        (
            "ALLOW_TEST_NUMBERS",
            "yes",
            "VERIFICATION['ALLOW_TEST_NUMBERS'] must be bool or NoneType, not str.",
        ),
        (
            "ALLOWED_REGIONS",
            "GB",
            "VERIFICATION['ALLOWED_REGIONS'] must be list or tuple, not str.",
        ),
    ],
)
def test_wrong_type(configure, key, value, text):
    configure(EMBEDDED_SANDBOX=True, **{key: value})
    message = only(check_settings())
    assert message.id == "verification.E003"
    assert message.msg == text


@pytest.mark.parametrize(
    "key", ["MAX_ATTEMPTS", "EXPIRES_AFTER", "LEASE_SECONDS", "REQUEST_TIMEOUT"]
)
def test_non_positive_numbers(configure, key):
    configure(EMBEDDED_SANDBOX=True, **{key: 0})
    message = only(check_settings())
    assert message.id == "verification.E004"
    assert message.msg == f"VERIFICATION[{key!r}] must be greater than 0."


def test_malformed_rate_limit(configure):
    configure(EMBEDDED_SANDBOX=True, RATE_LIMITS={"phone": (5,), "ip": None})
    message = only(check_settings())
    assert message.id == "verification.E005"
    assert message.msg == "VERIFICATION['RATE_LIMITS']['phone'] must be (count, seconds) or None."


def test_no_channel_layer(configure, settings):
    configure(EMBEDDED_SANDBOX=True)
    settings.CHANNEL_LAYERS = {}
    message = only(check_settings())
    assert message.id == "verification.E010"
    assert message.msg == "No channel layer named 'default' is configured."
    assert "CHANNEL_LAYERS" in message.hint


def test_channel_layer_alias_must_exist(configure):
    configure(EMBEDDED_SANDBOX=True, CHANNEL_LAYER="verification")
    assert only(check_settings()).id == "verification.E010"


def test_separate_workers_cannot_share_an_in_memory_layer(configure, settings):
    configure(EMBEDDED_WORKER=False, **CREDENTIALS)
    settings.CACHES = REDIS_CACHE
    message = only(check_settings())
    assert message.id == "verification.E011"
    assert "EMBEDDED_WORKER is off but the channel layer is in-memory" in message.msg
    assert "Redis" in message.hint


def test_no_credentials_and_no_sandbox_warns(configure):
    configure()
    assert [m.id for m in check_settings()] == ["verification.W020"]
    message = only(check_telegram_configured())
    assert message.id == "verification.W020"
    assert message.level == WARNING
    assert message.msg == "No Telegram credentials and no sandbox: codes cannot be sent."
    assert "TELEGRAM_API_ID" in message.hint


def test_no_credentials_and_no_sandbox_is_a_deployment_error(configure):
    configure()
    message = only(check_telegram_configured_for_deployment())
    assert message.id == "verification.E020"
    assert message.level == ERROR
    assert message.msg == "No Telegram credentials and no sandbox: codes cannot be sent."
    assert "TELEGRAM_API_ID" in message.hint


def test_half_the_credentials_are_no_credentials(configure):
    configure(TELEGRAM_API_ID=123456)
    assert only(check_telegram_configured()).id == "verification.W020"
    assert only(check_telegram_configured_for_deployment()).id == "verification.E020"


@pytest.mark.parametrize(
    "verification",
    [
        CREDENTIALS,
        {"EMBEDDED_SANDBOX": True},
        {"TELEGRAM_SERVER": "127.0.0.1:8443", "TELEGRAM_SERVER_PUBLIC_KEY": "sandbox.pem"},
    ],
)
def test_any_way_to_send_codes_satisfies_both_credential_checks(configure, verification):
    configure(**verification)
    assert check_telegram_configured() == []
    assert check_telegram_configured_for_deployment() == []


def test_credential_checks_leave_a_bad_setting_to_e001(configure, settings):
    configure()
    settings.VERIFICATION = [("TELEGRAM_API_ID", 1)]
    assert check_telegram_configured() == []
    assert check_telegram_configured_for_deployment() == []


def test_ci_without_telegram_secrets_passes_check_and_fails_check_deploy(configure):
    """A host's CI runs ``check`` (and ``migrate``, which runs the same checks) without the
    deployment's secrets: a warning. ``check --deploy`` refuses."""
    configure()
    ids = [m.id for m in run_checks() if m.id and m.id.startswith("verification.")]
    assert ids == ["verification.W020"]
    deploy = [
        m.id
        for m in run_checks(include_deployment_checks=True)
        if m.id and m.id.startswith("verification.")
    ]
    assert sorted(deploy) == ["verification.E020", "verification.W020", "verification.W060"]

    stderr = StringIO()
    call_command("check", stdout=StringIO(), stderr=stderr)
    assert "verification.W020" in stderr.getvalue()
    with pytest.raises(SystemCheckError, match=r"verification\.E020"):
        call_command("check", deploy=True, stdout=StringIO(), stderr=StringIO())


def test_telegram_server_with_its_key_passes(configure, tmp_path):
    key = tmp_path / "sandbox.pem"
    key.write_text("-----BEGIN RSA PUBLIC KEY-----\n-----END RSA PUBLIC KEY-----\n")
    configure(TELEGRAM_SERVER="127.0.0.1:8443", TELEGRAM_SERVER_PUBLIC_KEY=str(key))
    assert check_settings() == []


def test_telegram_server_without_public_key(configure):
    configure(TELEGRAM_SERVER="127.0.0.1:8443")
    message = only(check_settings())
    assert message.id == "verification.E022"
    assert message.msg == "TELEGRAM_SERVER is set but TELEGRAM_SERVER_PUBLIC_KEY is not."
    assert "telegram_sandbox" in message.hint


def test_telegram_server_public_key_file_missing(configure, tmp_path):
    missing = str(tmp_path / "nowhere.pem")
    configure(TELEGRAM_SERVER="127.0.0.1:8443", TELEGRAM_SERVER_PUBLIC_KEY=missing)
    message = only(check_settings())
    assert message.id == "verification.E023"
    assert message.msg == f"TELEGRAM_SERVER_PUBLIC_KEY {missing!r} does not exist."


@pytest.mark.parametrize("server", ["127.0.0.1", "127.0.0.1:port", ":8443", "host:99999"])
def test_malformed_telegram_server(configure, tmp_path, server):
    key = tmp_path / "sandbox.pem"
    key.write_text("-----BEGIN RSA PUBLIC KEY-----\n...\n-----END RSA PUBLIC KEY-----\n")
    configure(TELEGRAM_SERVER=server, TELEGRAM_SERVER_PUBLIC_KEY=str(key))
    message = only(check_settings())
    assert message.id == "verification.E021"
    assert message.msg == f"TELEGRAM_SERVER {server!r} is not host:port."


def test_embedded_sandbox_in_production_warns(configure, settings):
    configure(EMBEDDED_SANDBOX=True)
    settings.DEBUG = False
    settings.CACHES = DATABASE_CACHE
    message = only(check_settings())
    assert message.id == "verification.W030"
    assert message.level == WARNING
    assert "sandbox" in message.msg


def test_key_file_that_is_not_pem(configure, tmp_path):
    key = tmp_path / "hostname"
    key.write_text("myhost\n")
    configure(TELEGRAM_SERVER="127.0.0.1:8443", TELEGRAM_SERVER_PUBLIC_KEY=str(key))
    message = only(check_settings())
    assert message.id == "verification.E024"


def test_gateway_that_cannot_be_imported(configure):
    configure(EMBEDDED_SANDBOX=True, GATEWAY="no.such.Gateway")
    message = only(check_settings())
    assert message.id == "verification.E007"
    assert "no.such.Gateway" in message.msg


def test_unknown_rate_limit_scope(configure):
    configure(EMBEDDED_SANDBOX=True, RATE_LIMITS={"sesion": (1, 60)})
    message = only(check_settings())
    assert message.id == "verification.E006"
    assert "'sesion'" in message.msg


@pytest.mark.parametrize("key", ["MAX_RESENDS", "DEFAULT_RESEND_TIMEOUT"])
def test_negative_counts(configure, key):
    configure(EMBEDDED_SANDBOX=True, **{key: -1})
    message = only(check_settings())
    assert message.id == "verification.E004"
    assert message.msg == f"VERIFICATION[{key!r}] must not be negative."


def test_rate_limits_none_switches_every_limit_off(configure):
    from verification.app_settings import get_config

    configure(EMBEDDED_SANDBOX=True, RATE_LIMITS=None)
    assert check_settings() == []
    assert set(get_config()["RATE_LIMITS"].values()) == {None}


def test_gateway_that_is_not_a_gateway(configure):
    configure(EMBEDDED_SANDBOX=True, GATEWAY="verification.models.PhoneVerification")
    message = only(check_settings())
    assert message.id == "verification.E007"
    assert "not a TelegramGateway subclass" in message.msg


@pytest.mark.parametrize(
    "verification",
    [{"DEFAULT_REGION": "XX"}, {"ALLOWED_REGIONS": ["GB", "XX"]}, {"DENIED_REGIONS": ["xx"]}],
)
def test_unknown_region_codes(configure, verification):
    configure(EMBEDDED_SANDBOX=True, **verification)
    message = only(check_settings())
    assert message.id == "verification.E008"


def test_lower_case_region_codes_are_fine(configure):
    configure(EMBEDDED_SANDBOX=True, DEFAULT_REGION="gb", ALLOWED_REGIONS=["gb"])
    assert check_settings() == []


def test_a_boolean_is_not_a_rate_limit(configure):
    configure(EMBEDDED_SANDBOX=True, RATE_LIMITS={"ip": (True, 10)})
    assert only(check_settings()).id == "verification.E005"


def test_embedded_sandbox_without_embedded_worker_warns(configure, settings):
    settings.CHANNEL_LAYERS = {"default": {"BACKEND": "channels_redis.core.RedisChannelLayer"}}
    settings.CACHES = REDIS_CACHE
    configure(EMBEDDED_SANDBOX=True, EMBEDDED_WORKER=False)
    message = only(check_settings())
    assert message.id == "verification.W031"


LOCMEM = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
DATABASE_CACHE = {
    "default": {"BACKEND": "django.core.cache.backends.db.DatabaseCache", "LOCATION": "cache"}
}


def test_separate_workers_with_a_per_process_cache_are_an_error(configure, settings):
    configure(EMBEDDED_WORKER=False, **CREDENTIALS)
    settings.CHANNEL_LAYERS = REDIS
    settings.CACHES = LOCMEM
    message = only(check_settings())
    assert message.id == "verification.E012"
    assert message.level == ERROR
    assert "LocMemCache" in message.msg
    assert "rate limits and the resend lock" in message.msg


def test_an_embedded_worker_with_a_per_process_cache_warns_in_production(configure, settings):
    """Counts in LocMemCache are forgotten on restart and evicted past MAX_ENTRIES."""
    configure(**CREDENTIALS)
    settings.CACHES = LOCMEM
    settings.DEBUG = False
    message = only(check_settings())
    assert message.id == "verification.W012"
    assert message.level == WARNING
    assert "forgotten on every restart" in message.msg
    settings.CACHES = DATABASE_CACHE
    assert check_settings() == []


def test_a_per_process_cache_is_fine_in_development_or_without_limits(configure, settings):
    settings.CACHES = LOCMEM
    configure(**CREDENTIALS)
    assert check_settings() == []
    settings.DEBUG = False
    configure(RATE_LIMITS=None, **CREDENTIALS)
    assert check_settings() == []


@pytest.mark.parametrize("key", ["SANDBOX_CODE_LIFETIME", "TELEGRAM_SERVER_DC_ID"])
def test_positive_settings_from_the_table(configure, key):
    configure(EMBEDDED_SANDBOX=True, **{key: 0})
    assert only(check_settings()).msg == f"VERIFICATION[{key!r}] must be greater than 0."


def test_every_rule_is_a_documented_function():
    from django.core.checks import registry

    rules = [
        check
        for check in registry.registry.get_checks(include_deployment_checks=True)
        if check.__module__ == "verification.checks"
    ]
    assert len(rules) >= 20
    for rule in rules:
        assert rule.__doc__ and rule.__doc__.strip(), rule.__name__


def test_the_missing_credentials_rule_is_tagged_deploy():
    from django.core.checks import registry

    deploy_only = set(registry.registry.get_checks(include_deployment_checks=True)) - set(
        registry.registry.get_checks()
    )
    assert check_telegram_configured_for_deployment in deploy_only


def test_gateway_options_the_gateway_does_not_take(configure):
    configure(
        EMBEDDED_SANDBOX=True,
        GATEWAY="verification.gateway.fake.FakeGateway",
        GATEWAY_OPTIONS={"server": "127.0.0.1:1"},
    )
    message = only(check_settings())
    assert message.id == "verification.E009"
    assert "'server'" in message.msg


def test_gateway_options_the_gateway_takes(configure):
    configure(EMBEDDED_SANDBOX=True, GATEWAY_OPTIONS={"request_timeout": 5, "dc_id": 1})
    assert check_settings() == []


@pytest.mark.parametrize(
    "transports",
    [[], ["gateway", "email"], ["sender", "sender"], ["Gateway"]],
)
def test_transports_name_each_known_transport_once(configure, transports):
    configure(EMBEDDED_SANDBOX=True, TRANSPORTS=transports)
    message = only(check_settings())
    assert message.id == "verification.E014"
    assert message.level == ERROR
    assert "'sender' and/or 'gateway', each once" in message.msg


@pytest.mark.parametrize("transports", [["gateway"], ["gateway", "sender"], ("sender",)])
def test_transports_in_any_order_pass(configure, transports):
    configure(EMBEDDED_SANDBOX=True, TRANSPORTS=transports)
    assert check_settings() == []


def test_embedded_gateway_sandbox_without_embedded_worker_warns(configure, settings):
    settings.CHANNEL_LAYERS = REDIS
    settings.CACHES = REDIS_CACHE
    configure(EMBEDDED_GATEWAY_SANDBOX=True, EMBEDDED_WORKER=False, **CREDENTIALS)
    message = only(check_settings())
    assert message.id == "verification.W032"
    assert "manage.py telegram_sandbox --gateway-port" in message.hint


def test_a_gateway_token_alone_can_send_codes(configure):
    configure(TRANSPORTS=["gateway"], TELEGRAM_GATEWAY_TOKEN="token")
    assert check_settings() == []
    reported = {message.id for message in check_settings(deploy=True)}
    assert not reported & {"verification.W020", "verification.E020"}, reported


def test_a_gateway_token_left_out_of_transports_cannot(configure):
    configure(TRANSPORTS=["sender"], TELEGRAM_GATEWAY_TOKEN="token")
    assert only(check_settings()).id == "verification.W020"
