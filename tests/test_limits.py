"""Send limits: sliding windows, counted atomically with the check, on every shared cache."""

from __future__ import annotations

import multiprocessing
import os
import uuid
from datetime import UTC, datetime
from typing import Any

import pytest

from verification.errors import ErrorCode, VerificationError
from verification.limits import SLICES, Limit, limits_release, limits_take

PHONE = "+9996621234"


def take(limit: Limit, now: float) -> bool:
    try:
        limits_take(limits=[limit], now=now)
    except VerificationError as exc:
        assert exc.code is ErrorCode.RATE_LIMITED
        return False
    return True


def test_a_window_boundary_does_not_double_the_limit():
    """30 an hour at the end of one clock hour and 30 more at the start of the next: a fixed
    window would allow 60 in a minute."""
    limit = Limit("ip", "203.0.113.7", 30, 3600)
    hour = 1_700_002_800  # a multiple of 3600
    assert all(take(limit, hour - 30 + i) for i in range(30))
    assert not any(take(limit, hour + 30 + i) for i in range(30))
    # Sliding: the sends leave the span an hour (and at most one slice) after they were made.
    assert not take(limit, hour - 30 + 3600 - 1)
    assert take(limit, hour + 3600 + 3600 / SLICES)


def test_retry_after_says_when_the_oldest_send_leaves_the_window():
    limit = Limit("phone", PHONE, 2, 100)
    assert take(limit, 1000.0)
    assert take(limit, 1050.0)
    with pytest.raises(VerificationError) as refused:
        limits_take(limits=[limit], now=1060.0)
    # The send at 1000 is in slice [1000, 1010), which leaves the span at 1110.
    assert refused.value.retry_after == 50
    assert not take(limit, 1109.0)
    assert take(limit, 1110.0)


def test_a_refusal_names_the_limit_that_holds_longest():
    """The visitor is told what was limited: this number, this browser, this network..."""
    session = Limit("session", "owner", 1, 600)
    address = Limit("ip", "203.0.113.7", 1, 3600)
    assert take(session, 100.0)
    with pytest.raises(VerificationError) as refused:
        limits_take(limits=[session, address], now=100.0)
    assert (refused.value.limit, refused.value.retry_after) == ("session", 620)
    assert "this browser" in refused.value.message
    assert take(Limit("ip", "203.0.113.8", 1, 3600), 100.0)
    with pytest.raises(VerificationError) as refused:
        limits_take(
            limits=[Limit("session", "other", 1, 600), Limit("ip", "203.0.113.8", 1, 3600)],
            now=200.0,
        )
    assert refused.value.limit == "address"
    assert "your network" in refused.value.message


def test_a_refused_send_gives_back_what_it_counted():
    """Refused by one scope, a send uses up no quota in the others."""
    roomy = Limit("session", "owner", 5, 600)
    full = Limit("phone", PHONE, 1, 600)
    assert take(full, 100.0)
    for _ in range(10):
        with pytest.raises(VerificationError):
            limits_take(limits=[roomy, full], now=100.0)
    taken = [limits_take(limits=[roomy], now=100.0) for _ in range(5)]
    assert not take(roomy, 100.0)
    limits_release(keys=taken[0])
    assert take(roomy, 100.0)


@pytest.mark.django_db
def test_sends_across_a_window_boundary_are_refused(fake_settings, make_sender, monkeypatch):
    """Through the service: the phone limit holds across the clock hour."""
    from verification import services

    make_sender()
    services.sender_account_leases_renew(owner="worker-a")
    hour = 1_700_002_800
    clock = {"now": hour - 60.0}
    monkeypatch.setattr(
        services.timezone, "now", lambda: datetime.fromtimestamp(clock["now"], tz=UTC)
    )
    for n in range(5):
        services.verification_start(owner=f"o{n}", user=None, phone_number=PHONE)
    clock["now"] = hour + 60.0
    with pytest.raises(VerificationError) as refused:
        services.verification_start(owner="o5", user=None, phone_number=PHONE)
    assert refused.value.code is ErrorCode.RATE_LIMITED
    assert refused.value.retry_after > 3000
    assert refused.value.limit == "phone"
    assert "this number" in refused.value.message


@pytest.mark.django_db
def test_a_full_sender_account_passes_sends_to_the_others(fake_settings, make_sender, settings):
    from verification import services

    settings.VERIFICATION = {
        **settings.VERIFICATION,
        "RATE_LIMITS": {"account": (2, 3600), "session": None, "phone": None},
    }
    first = make_sender("+9996610001")
    second = make_sender("+9996610002")
    services.sender_account_leases_renew(owner="worker-a")
    used = [
        services.verification_start(owner=f"o{n}", user=None, phone_number=PHONE)[0]
        for n in range(4)
    ]
    assert sorted(v.sender_account_id for v in used) == sorted([first.pk] * 2 + [second.pk] * 2)
    with pytest.raises(VerificationError) as refused:
        services.verification_start(owner="o5", user=None, phone_number=PHONE)
    assert refused.value.code is ErrorCode.RATE_LIMITED
    assert refused.value.limit == "site"


@pytest.mark.django_db
def test_the_global_budget(fake_settings, make_sender, settings):
    from verification import services

    settings.VERIFICATION = {**settings.VERIFICATION, "RATE_LIMITS": {"global": (3, 3600)}}
    make_sender()
    services.sender_account_leases_renew(owner="worker-a")
    for n in range(3):
        services.verification_start(owner=f"o{n}", user=None, phone_number=f"+99966{n + 1}1234")
    with pytest.raises(VerificationError) as refused:
        services.verification_start(owner="o9", user=None, phone_number="+9996691234")
    assert refused.value.code is ErrorCode.RATE_LIMITED
    assert refused.value.limit == "site"


# Processes counting at once on Redis (spawned processes import this module: no models above)


def _count_in_a_process(redis_url: str, prefix: str, start: Any, tries: int, out: Any) -> None:
    """One web process: waits for the others, then tries ``tries`` sends at once."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    from django.conf import settings

    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": redis_url,
            "KEY_PREFIX": prefix,
        }
    }
    import django

    django.setup()
    limits = [Limit("ip", "203.0.113.7", 30, 3600), Limit("phone", PHONE, 1000, 3600)]
    start.wait()
    admitted = 0
    for _ in range(tries):
        try:
            limits_take(limits=limits, now=1_700_000_000.0)
            admitted += 1
        except VerificationError:
            pass
    out.put(admitted)


def test_three_processes_on_redis_admit_exactly_the_limit(redis, settings):
    context = multiprocessing.get_context("spawn")
    prefix = uuid.uuid4().hex
    start = context.Barrier(3)
    out = context.Queue()
    processes = [
        context.Process(target=_count_in_a_process, args=(f"{redis}/0", prefix, start, 25, out))
        for _ in range(3)
    ]
    for process in processes:
        process.start()
    admitted = [out.get(timeout=60) for _ in processes]
    for process in processes:
        process.join(timeout=10)
    assert sum(admitted) == 30, admitted
    # Refused sends gave their count back in the roomy scope too.
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": f"{redis}/0",
            "KEY_PREFIX": prefix,
        }
    }
    from django.core.cache import cache

    phone = Limit("phone", PHONE, 1000, 3600)
    keys = [phone.key(i) for i in phone.indexes(1_700_000_000.0)]
    assert sum(int(v) for v in cache.get_many(keys).values()) == 30
    ip = Limit("ip", "203.0.113.7", 30, 3600)
    cache.delete_many(keys + [ip.key(i) for i in ip.indexes(1_700_000_000.0)])
