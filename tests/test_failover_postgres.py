"""Falling through to the next transport on PostgreSQL, where transactions truly overlap:
handlers giving up on one send at the same instant move it once, so one code goes out."""

from __future__ import annotations

import json
import secrets
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.integration

# Eight threads, each with its own connection, released together by a barrier, fall through on
# the same verification; round after round.
RACE = """
import json, threading
from datetime import timedelta
from django.db import connection
from django.utils import timezone
from verification import services
from verification.errors import ErrorCode
from verification.models import PhoneVerification, VerificationEvent

rounds = []
for round_ in range(10):
    row = PhoneVerification.objects.create(
        owner=f"race-{round_}", phone_number="+9996641234", transport="sender",
        status="sending", expires_at=timezone.now() + timedelta(minutes=5),
    )
    barrier = threading.Barrier(8)
    moved = []

    def give_up():
        try:
            barrier.wait()
            moved.append(services.verification_transport_fall_through(
                verification_id=row.pk, transport="sender",
                error=ErrorCode.TELEGRAM_UNAVAILABLE, telegram_error="NOT_CONNECTED",
            ) is not None)
        finally:
            connection.close()

    threads = [threading.Thread(target=give_up) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    row.refresh_from_db()
    moves = VerificationEvent.objects.filter(verification=row, data__has_key="failover_to")
    rounds.append([sum(moved), row.transport, moves.count()])
print(json.dumps(rounds))
"""


def test_handlers_falling_through_at_once_move_a_send_once(postgres, site_environment):
    name = f"passportsite_failover_{secrets.token_hex(4)}"
    with psycopg.connect(f"{postgres}/postgres", autocommit=True) as connection:
        connection.execute(f'CREATE DATABASE "{name}"')
    env = site_environment(
        DATABASE_URL=f"{postgres}/{name}",
        EMBEDDED_SANDBOX="0",
        TRANSPORTS="sender,gateway",
        TELEGRAM_GATEWAY_TOKEN="a-token",
    )
    try:
        for command in (["migrate", "--noinput"], ["shell", "-c", RACE]):
            result = subprocess.run(
                [sys.executable, "manage.py", *command],
                cwd=ROOT, env=env, capture_output=True, timeout=120,
            )  # fmt: skip
            assert result.returncode == 0, result.stderr.decode()
        rounds = json.loads(result.stdout.decode().strip().splitlines()[-1])
    finally:
        with psycopg.connect(f"{postgres}/postgres", autocommit=True) as connection:
            connection.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    assert rounds == [[1, "gateway", 1]] * 10
