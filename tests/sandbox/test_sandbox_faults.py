"""Injected errors, delays and dropped connections; several clients at once."""

from __future__ import annotations

import asyncio
import time

import pytest
from telethon import errors, functions, types

pytestmark = pytest.mark.asyncio


def send_verify(number: str) -> functions.account.SendVerifyPhoneCodeRequest:
    return functions.account.SendVerifyPhoneCodeRequest(number, types.CodeSettings())


async def test_injected_error_hits_the_next_call_only(sandbox, signed_in, phone):
    client = await signed_in()
    sandbox.inject_error("account.sendVerifyPhoneCode", "FLOOD_WAIT_5", code=420)
    with pytest.raises(errors.FloodWaitError) as caught:
        await client(send_verify(phone()))
    assert caught.value.seconds == 5
    # Telethon remembers flood waits per request type, so check "only once" from a new client.
    other = await signed_in()
    assert (await other(send_verify(phone()))).phone_code_hash


async def test_injected_error_for_one_phone_several_times(sandbox, signed_in, phone):
    client = await signed_in()
    target, bystander = phone(), phone()
    sandbox.inject_error(
        "account.sendVerifyPhoneCode", "PHONE_NUMBER_FLOOD", phone=target[1:], times=2
    )
    await client(send_verify(bystander))
    for _ in range(2):
        with pytest.raises(errors.PhoneNumberFloodError):
            await client(send_verify(target))
    assert (await client(send_verify(target))).phone_code_hash


async def test_injected_unknown_error_keeps_its_name(sandbox, signed_in, phone):
    client = await signed_in()
    sandbox.inject_error("account.verifyPhone", "PHONE_VERIFICATION_NEEDED")
    number = phone()
    sent = await client(send_verify(number))
    with pytest.raises(errors.BadRequestError) as caught:
        await client(functions.account.VerifyPhoneRequest(number, sent.phone_code_hash, "22222"))
    assert caught.value.message == "PHONE_VERIFICATION_NEEDED"


async def test_injected_delay_does_not_block_other_calls(sandbox, signed_in, phone):
    client = await signed_in()
    sandbox.inject_delay("account.sendVerifyPhoneCode", 1.0)
    started = time.monotonic()
    slow = asyncio.ensure_future(client(send_verify(phone())))
    await asyncio.sleep(0.1)
    pong = await client(functions.PingRequest(ping_id=7))
    assert pong.ping_id == 7 and not slow.done()
    assert (await slow).phone_code_hash
    assert time.monotonic() - started >= 1.0


async def test_client_survives_dropped_connections(sandbox, signed_in, phone):
    client = await signed_in()
    before = sandbox.stats["connections"]
    sandbox.drop_connections()
    number = phone(3)
    sent = await asyncio.wait_for(client(send_verify(number)), 10)
    assert await client(functions.account.VerifyPhoneRequest(number, sent.phone_code_hash, "33333"))
    assert sandbox.stats["connections"] > before  # it really reconnected
    assert await client.is_user_authorized()


async def test_many_clients_at_once(sandbox, signed_in, phone):
    clients = await asyncio.gather(*(signed_in() for _ in range(6)))
    numbers = [phone(x) for x in range(1, 7)]
    sent = await asyncio.gather(*(c(send_verify(n)) for c, n in zip(clients, numbers, strict=True)))
    results = await asyncio.gather(
        *(
            c(functions.account.VerifyPhoneRequest(n, s.phone_code_hash, str(x) * 5))
            for x, (c, n, s) in enumerate(zip(clients, numbers, sent, strict=True), start=1)
        )
    )
    assert results == [True] * 6


async def test_one_client_many_concurrent_calls(sandbox, signed_in, phone):
    client = await signed_in()
    numbers = [phone() for _ in range(10)]
    sent = await asyncio.gather(*(client(send_verify(n)) for n in numbers))
    assert len({s.phone_code_hash for s in sent}) == 10


async def test_ordered_calls_wait_for_a_slow_predecessor(sandbox, signed_in, phone):
    client = await signed_in()
    first, second = phone(), phone()
    sandbox.inject_delay("account.sendVerifyPhoneCode", 0.5)
    # ordered=True makes Telethon wrap the second call in invokeAfterMsg(first).
    await client([send_verify(first), send_verify(second)], ordered=True)
    delivered = [c.phone for c in sandbox.inbox if c.phone in (first, second)]
    assert delivered == [first, second]
