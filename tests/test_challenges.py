"""The challenge before sending: issuing and checking hashcash puzzles, and the socket asking for
one after ``CHALLENGE_AFTER`` sends, checked before anything is counted or sent."""

from __future__ import annotations

import time

import pytest
from django.core.checks import run_checks
from django.core.signing import time as signing_time

from verification.challenges import (
    Challenge,
    HashcashChallenge,
    challenge_backend,
    hashcash_passes,
    hashcash_solve,
)
from verification.gateway.fake import FakeGateway
from verification.models import PhoneVerification

PHONE = "+9996621234"
# Small in tests: the server's side is the same at any difficulty.
DIFFICULTY = 8


def solved(challenge: dict) -> dict:
    """The page's answer to a hashcash challenge frame's ``challenge``."""
    assert challenge["kind"] == "hashcash"
    return {
        "token": challenge["token"],
        "nonce": hashcash_solve(challenge["token"], challenge["difficulty"]),
    }


def wrong(challenge: dict) -> dict:
    """A nonce that does not solve it."""
    nonce = 0
    while hashcash_passes(challenge["token"], str(nonce), challenge["difficulty"]):
        nonce += 1
    return {"token": challenge["token"], "nonce": str(nonce)}


# Issuing and checking ----------------------------------------------------------------------------


@pytest.fixture
def hashcash() -> HashcashChallenge:
    return HashcashChallenge(difficulty=DIFFICULTY)


def issued(hashcash: HashcashChallenge, owner: str = "owner-a") -> dict:
    return {"kind": hashcash.kind, **hashcash.issue(owner=owner)}


def test_a_solved_puzzle_passes_once(hashcash):
    challenge = issued(hashcash)
    assert challenge["difficulty"] == DIFFICULTY
    assert challenge["expires_in"] == 300
    answer = solved(challenge)
    assert hashcash.verify(owner="owner-a", answer=answer)
    # Replayed: refused, even by another instance (the record is in the cache).
    assert not hashcash.verify(owner="owner-a", answer=answer)
    assert not HashcashChallenge(difficulty=DIFFICULTY).verify(owner="owner-a", answer=answer)


def test_a_wrong_nonce_fails_and_does_not_use_the_puzzle_up(hashcash):
    challenge = issued(hashcash)
    assert not hashcash.verify(owner="owner-a", answer=wrong(challenge))
    assert hashcash.verify(owner="owner-a", answer=solved(challenge))


def test_a_puzzle_is_bound_to_its_owner(hashcash):
    answer = solved(issued(hashcash, owner="owner-a"))
    assert not hashcash.verify(owner="owner-b", answer=answer)
    assert hashcash.verify(owner="owner-a", answer=answer)


def test_an_expired_puzzle_fails(hashcash, monkeypatch):
    answer = solved(issued(hashcash))
    now = time.time()
    monkeypatch.setattr(signing_time, "time", lambda: now + 301)
    assert not hashcash.verify(owner="owner-a", answer=answer)
    monkeypatch.setattr(signing_time, "time", lambda: now + 299)
    assert hashcash.verify(owner="owner-a", answer=answer)


def test_the_difficulty_is_the_one_the_token_was_issued_with(hashcash):
    """Lowering CHALLENGE_DIFFICULTY later does not weaken a token issued before, and a token's
    difficulty cannot be edited: it is signed."""
    token = issued(HashcashChallenge(difficulty=16))["token"]
    nonce = 0
    while not hashcash_passes(token, str(nonce), 4) or hashcash_passes(token, str(nonce), 16):
        nonce += 1
    easy = {"token": token, "nonce": str(nonce)}
    assert not HashcashChallenge(difficulty=4).verify(owner="owner-a", answer=easy)
    answer = solved(issued(hashcash))
    forged = {**answer, "token": ("A" if answer["token"][0] != "A" else "B") + answer["token"][1:]}
    forged["nonce"] = hashcash_solve(forged["token"], DIFFICULTY)
    assert not hashcash.verify(owner="owner-a", answer=forged)


@pytest.mark.parametrize(
    "answer",
    [None, "a string", 7, [], {}, {"token": "x"}, {"token": 1, "nonce": "1"}, {"nonce": "1"}],
)
def test_answers_of_the_wrong_shape_fail(hashcash, answer):
    assert not hashcash.verify(owner="owner-a", answer=answer)


def test_oversized_answers_fail_before_any_hashing(hashcash):
    challenge = issued(hashcash)
    assert not hashcash.verify(owner="owner-a", answer={**solved(challenge), "nonce": "1" * 33})
    assert not hashcash.verify(
        owner="owner-a", answer={"token": challenge["token"] + "x" * 300, "nonce": "1"}
    )


def test_the_backend_comes_from_the_settings(settings):
    settings.VERIFICATION = {
        **settings.VERIFICATION,
        "CHALLENGE_DIFFICULTY": 12,
        "CHALLENGE_OPTIONS": {"lifetime": 60},
    }
    backend = challenge_backend()
    assert isinstance(backend, HashcashChallenge)
    assert (backend.difficulty, backend.lifetime) == (12, 60)
    settings.VERIFICATION = {**settings.VERIFICATION, "CHALLENGE_OPTIONS": {"difficulty": 9}}
    assert challenge_backend().difficulty == 9


class NotAChallenge:
    pass


@pytest.mark.parametrize(
    ("config", "ids"),
    [
        ({"CHALLENGE_AFTER": (3, 3600), "NEW_SESSIONS_LIMIT": None}, []),
        ({"CHALLENGE_AFTER": (0, 60)}, []),
        ({"CHALLENGE_AFTER": (3, 0)}, ["verification.E015"]),
        ({"CHALLENGE_AFTER": (-1, 60)}, ["verification.E015"]),
        ({"CHALLENGE_AFTER": (3,)}, ["verification.E015"]),
        ({"NEW_SESSIONS_LIMIT": (0, 3600)}, ["verification.E015"]),
        ({"CHALLENGE": "verification.nowhere.Challenge"}, ["verification.E016"]),
        ({"CHALLENGE": "tests.test_challenges.NotAChallenge"}, ["verification.E016"]),
        ({"CHALLENGE_OPTIONS": {"colour": "red"}}, ["verification.E016"]),
    ],
)
def test_system_checks(settings, config, ids):
    settings.VERIFICATION = {**settings.VERIFICATION, **config}
    found = [m.id for m in run_checks() if m.id in {"verification.E015", "verification.E016"}]
    assert found == ids


# Over the socket ---------------------------------------------------------------------------------


@pytest.fixture
def challenged(fake_settings, make_sender):
    """Two sends per session or address, then a challenge."""
    FakeGateway.resend_timeout = 60
    make_sender()
    fake_settings.VERIFICATION = {
        **fake_settings.VERIFICATION,
        "CHALLENGE_AFTER": (2, 3600),
        "CHALLENGE_DIFFICULTY": DIFFICULTY,
    }
    return fake_settings


async def sent(tab, **frame) -> dict:
    """Send ``send_code`` and return the first ``code_sent`` or ``error`` frame."""
    await tab.send(type="send_code", phone_number=PHONE, **frame)
    while (answer := await tab.receive())["type"] not in {"code_sent", "error"}:
        pass
    return answer


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_after_n_sends_the_next_needs_a_solved_challenge(
    challenged, open_tab, browser_session
):
    tab, _ = await open_tab(await browser_session())
    for _ in range(2):
        assert (await sent(tab))["type"] == "code_sent"
    required = await sent(tab)
    assert required["code"] == "CHALLENGE_REQUIRED"
    assert required["message"]
    challenge = required["challenge"]
    assert challenge["kind"] == "hashcash"
    assert challenge["difficulty"] == DIFFICULTY
    assert challenge["expires_in"] > 0
    # Refused before anything started.
    assert await PhoneVerification.objects.acount() == 2

    failed = await sent(tab, challenge=wrong(challenge))
    assert failed["code"] == "CHALLENGE_FAILED"
    assert failed["challenge"]["token"] != challenge["token"]

    answer = solved(challenge)
    assert (await sent(tab, challenge=answer))["type"] == "code_sent"
    assert await PhoneVerification.objects.acount() == 3
    # Replayed: refused.
    assert (await sent(tab, challenge=answer))["code"] == "CHALLENGE_FAILED"
    # Still over the threshold: every send needs a new one.
    assert (await sent(tab))["code"] == "CHALLENGE_REQUIRED"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_challenge_is_checked_before_any_limit_is_counted(
    challenged, open_tab, browser_session, settings
):
    """Sends refused for want of a challenge use up none of the session's limit: with a limit
    of 3, thirty refusals still leave the third send."""
    settings.VERIFICATION = {
        **settings.VERIFICATION,
        "RATE_LIMITS": {"session": (3, 600), "phone": None, "ip": None},
    }
    tab, _ = await open_tab(await browser_session())
    for _ in range(2):
        assert (await sent(tab))["type"] == "code_sent"
    for _ in range(15):
        assert (await sent(tab))["code"] == "CHALLENGE_REQUIRED"
        assert (await sent(tab, challenge={"token": "forged", "nonce": "1"}))[
            "code"
        ] == "CHALLENGE_FAILED"
    required = await sent(tab)
    assert (await sent(tab, challenge=solved(required["challenge"])))["type"] == "code_sent"
    assert await PhoneVerification.objects.acount() == 3
    # Now the session limit itself is spent, challenge or not.
    required = await sent(tab)
    refused = await sent(tab, challenge=solved(required["challenge"]))
    assert refused["code"] == "RATE_LIMITED"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_an_answer_for_another_session_fails(challenged, open_tab, browser_session):
    first, _ = await open_tab(await browser_session())
    second, _ = await open_tab(await browser_session())
    for _ in range(2):
        assert (await sent(first))["type"] == "code_sent"
        assert (await sent(second))["type"] == "code_sent"
    theirs = (await sent(first))["challenge"]
    assert (await sent(second))["code"] == "CHALLENGE_REQUIRED"
    assert (await sent(second, challenge=solved(theirs)))["code"] == "CHALLENGE_FAILED"
    # The first session's own answer still passes: the other's attempt did not use it up.
    assert (await sent(first, challenge=solved(theirs)))["type"] == "code_sent"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_sends_from_one_address_count_across_sessions(
    challenged, browser_session, stop_runtime
):
    """A fresh session for every send does not dodge the challenge: the address counts too."""
    from verification.testing import VerificationTab

    tabs = []
    try:
        for n in range(3):
            tab = VerificationTab(await browser_session())
            tab.communicator.scope["client"] = ["203.0.113.9", 40000 + n]
            tabs.append(tab)
            await tab.connect()
        assert (await sent(tabs[0]))["type"] == "code_sent"
        assert (await sent(tabs[1]))["type"] == "code_sent"
        required = await sent(tabs[2])
        assert required["code"] == "CHALLENGE_REQUIRED"
        assert (await sent(tabs[2], challenge=solved(required["challenge"])))["type"] == "code_sent"
    finally:
        for tab in tabs:
            await tab.close()


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_challenge_after_zero_challenges_every_send_and_none_never(
    challenged, open_tab, browser_session, settings
):
    settings.VERIFICATION = {**settings.VERIFICATION, "CHALLENGE_AFTER": (0, 3600)}
    tab, _ = await open_tab(await browser_session())
    required = await sent(tab)
    assert required["code"] == "CHALLENGE_REQUIRED"
    assert (await sent(tab, challenge=solved(required["challenge"])))["type"] == "code_sent"
    settings.VERIFICATION = {**settings.VERIFICATION, "CHALLENGE_AFTER": None}
    for _ in range(3):
        assert (await sent(tab))["type"] == "code_sent"


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_the_challenge_messages_are_translated(
    challenged, browser_session, stop_runtime, settings
):
    from verification.testing import VerificationTab

    settings.VERIFICATION = {**settings.VERIFICATION, "CHALLENGE_AFTER": (0, 3600)}
    tab = VerificationTab(await browser_session())
    tab.communicator.scope["headers"].append((b"accept-language", b"ru"))
    try:
        await tab.connect()
        required = await sent(tab)
        assert required["message"] == (
            "Перед отправкой следующего кода браузер должен пройти быструю проверку."
        )
        failed = await sent(tab, challenge=wrong(required["challenge"]))
        assert failed["message"] == (
            "Проверка браузера не пройдена или заняла слишком много времени. Отправьте код ещё раз."
        )
    finally:
        await tab.close()


class AlwaysAsks(Challenge):
    """A stand-in for a hosted CAPTCHA: passes the answer "ok" once per issue."""

    kind = "example-captcha"

    def __init__(self, *, site_key: str) -> None:
        self.site_key = site_key

    def issue(self, *, owner: str) -> dict:
        return {"site_key": self.site_key}

    def verify(self, *, owner: str, answer: object) -> bool:
        return answer == {"response": "ok"}


@pytest.mark.asyncio
@pytest.mark.django_db(transaction=True)
async def test_a_challenge_class_of_the_hosts_own(challenged, open_tab, browser_session, settings):
    settings.VERIFICATION = {
        **settings.VERIFICATION,
        "CHALLENGE_AFTER": (0, 3600),
        "CHALLENGE": "tests.test_challenges.AlwaysAsks",
        "CHALLENGE_OPTIONS": {"site_key": "public-key"},
    }
    tab, _ = await open_tab(await browser_session())
    required = await sent(tab)
    assert required["challenge"] == {"kind": "example-captcha", "site_key": "public-key"}
    assert (await sent(tab, challenge={"response": "no"}))["code"] == "CHALLENGE_FAILED"
    assert (await sent(tab, challenge={"response": "ok"}))["type"] == "code_sent"
