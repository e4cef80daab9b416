"""A challenge before sending: after ``CHALLENGE_AFTER`` sends, the next must pass a check first.

The threshold is counted per session (its owner token) and per client address (IPv6 per /64),
each in a sliding window (:mod:`verification.limits`). Once either is reached, a ``send_code``
without a passing answer is refused with ``CHALLENGE_REQUIRED`` and the parameters of a fresh
challenge; the page solves it and sends again with the answer. The answer is checked before any
limit is counted or anything is sent, so a refused send costs the site one hash.

The check is pluggable (``CHALLENGE``, a dotted path, built with ``CHALLENGE_OPTIONS``): a
:class:`Challenge` issues the public parameters the page needs and verifies the page's answer.
The default, :class:`HashcashChallenge`, is a proof-of-work that needs no third-party service.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from django.core import signing
from django.core.cache import cache
from django.utils.module_loading import import_string

from .app_settings import get_config
from .errors import ErrorCode, VerificationError
from .limits import Limit, limits_count, limits_used


class Challenge:
    """A check a visitor passes before a send, once ``CHALLENGE_AFTER`` sends were made.

    Subclass it and name the subclass in ``CHALLENGE``; ``CHALLENGE_OPTIONS`` are passed to its
    constructor. Both methods run on the app's database threads (they may use the cache or the
    database, and make a short HTTP request), inside the step that starts the send.
    """

    #: The ``kind`` the page sees, which picks the code that solves the challenge.
    kind = ""
    #: Static path of the ES module the shipped page imports to solve this kind: it exports
    #: ``solve(challenge, {signal}) -> Promise<answer>``. The module loads only when a
    #: challenge arrives.
    script = "verification/verify_challenge.js"

    def issue(self, *, owner: str) -> dict[str, Any]:
        """The public parameters of a new challenge for ``owner``, sent to the page (JSON)."""
        raise NotImplementedError

    def verify(self, *, owner: str, answer: Any) -> bool:
        """Whether ``answer`` (the page's, any JSON value) passes a challenge issued to
        ``owner``. An answer must pass once only."""
        raise NotImplementedError


class HashcashChallenge(Challenge):
    """Proof-of-work: find a ``nonce`` such that SHA-256(``token`` + ``nonce``) begins with
    ``difficulty`` zero bits.

    ``token`` is signed (``SECRET_KEY``) for one owner, carries its difficulty and the time it
    was issued, and is accepted for ``lifetime`` seconds, once: the hash of every accepted token
    is remembered in the default cache until it expires. The page tries about
    ``2 ** difficulty`` nonces; the server checks an answer with one hash.
    """

    kind = "hashcash"
    #: Longest token and nonce accepted (a token is about 90 characters).
    MAX_TOKEN = 256
    MAX_NONCE = 32

    def __init__(self, *, difficulty: int | None = None, lifetime: int = 300) -> None:
        self.difficulty = get_config()["CHALLENGE_DIFFICULTY"] if difficulty is None else difficulty
        self.lifetime = lifetime

    @staticmethod
    def _salt(owner: str) -> str:
        # Signed for one owner: another session cannot use it.
        return f"verification.challenge.hashcash:{owner}"

    def issue(self, *, owner: str) -> dict[str, Any]:
        token = signing.dumps(
            {"r": secrets.token_urlsafe(12), "d": self.difficulty}, salt=self._salt(owner)
        )
        return {"token": token, "difficulty": self.difficulty, "expires_in": self.lifetime}

    def verify(self, *, owner: str, answer: Any) -> bool:
        if not isinstance(answer, dict):
            return False
        token, nonce = answer.get("token"), answer.get("nonce")
        if not (isinstance(token, str) and isinstance(nonce, str)):
            return False
        if len(token) > self.MAX_TOKEN or len(nonce) > self.MAX_NONCE or not nonce.isascii():
            return False
        try:
            issued = signing.loads(token, salt=self._salt(owner), max_age=self.lifetime)
            difficulty = int(issued["d"])
        except (signing.BadSignature, KeyError, TypeError, ValueError):
            return False
        if not hashcash_passes(token, nonce, difficulty):
            return False
        # Single use: the first answer with this token wins, a replay is refused.
        used = f"verification:challenge:used:{hashlib.sha256(token.encode()).hexdigest()}"
        return bool(cache.add(used, 1, timeout=self.lifetime + 60))


def hashcash_passes(token: str, nonce: str, difficulty: int) -> bool:
    """Whether SHA-256(``token`` + ``nonce``) begins with ``difficulty`` zero bits."""
    digest = hashlib.sha256((token + nonce).encode()).digest()
    return int.from_bytes(digest, "big") >> (256 - difficulty) == 0


def hashcash_solve(token: str, difficulty: int) -> str:
    """A nonce that solves a hashcash challenge (what the page's worker does; for tests)."""
    nonce = 0
    while not hashcash_passes(token, str(nonce), difficulty):
        nonce += 1
    return str(nonce)


def challenge_backend() -> Challenge:
    """A :class:`Challenge` of the ``CHALLENGE`` class, built with ``CHALLENGE_OPTIONS``."""
    config = get_config()
    challenge: Challenge = import_string(config["CHALLENGE"])(**config["CHALLENGE_OPTIONS"])
    return challenge


class ChallengeError(VerificationError):
    """``CHALLENGE_REQUIRED`` or ``CHALLENGE_FAILED``, with a fresh challenge to pass."""

    def __init__(self, code: ErrorCode, *, challenge: dict[str, Any]) -> None:
        super().__init__(code)
        self.challenge = challenge


def _counters(owner: str, address: str) -> list[Limit]:
    after = get_config()["CHALLENGE_AFTER"]
    if after is None:
        return []
    count, seconds = after
    return [
        Limit(scope, value, count, seconds)
        for scope, value in (("challenge-session", owner), ("challenge-ip", address))
        if value
    ]


def challenge_pass(*, owner: str, address: str, answer: Any, now: float) -> None:
    """Raise :class:`ChallengeError` unless this send may go: under the threshold, or with an
    ``answer`` that passes. ``address`` is the client's address bucket. Counts nothing."""
    counters = _counters(owner, address)
    after = get_config()["CHALLENGE_AFTER"]
    if after is None:
        return
    due = after[0] == 0 or any(limits_used(limit=c, now=now) >= c.count for c in counters)
    if not due:
        return
    backend = challenge_backend()
    if answer is not None and backend.verify(owner=owner, answer=answer):
        return
    code = ErrorCode.CHALLENGE_REQUIRED if answer is None else ErrorCode.CHALLENGE_FAILED
    raise ChallengeError(code, challenge={"kind": backend.kind, **backend.issue(owner=owner)})


def challenge_count(*, owner: str, address: str, now: float) -> None:
    """Count a send that went ahead towards the threshold of its session and address."""
    limits_count(limits=_counters(owner, address), now=now)
