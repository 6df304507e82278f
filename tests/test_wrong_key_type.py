"""A key written by something else with another type is a BrokerError that names the
call's keys, from the sync and the asyncio API alike (it was a raw WRONGTYPE)."""

from __future__ import annotations

import asyncio
import re

import pytest
import redis

from csgoflip_jobs import BrokerError, JobQueue, aio, keys
from csgoflip_jobs.helpers.errors import WrongKeyTypeError


def test_a_queue_list_of_the_wrong_type_is_named(redis_client: redis.Redis) -> None:
    queue = JobQueue("email")
    queue.add("test-record", {"n": 0})  # Celery has built its message template
    queue.drain()
    redis_client.set("email", "not a list")
    with pytest.raises(WrongKeyTypeError, match=r"its keys: .*, email, ") as caught:
        queue.add("test-record", {"n": 1})
    assert isinstance(caught.value, BrokerError) and "WRONGTYPE" in str(caught.value)
    redis_client.delete("email")
    assert queue.add("test-record", {"n": 1})  # nothing was half stored
    assert queue.get_job_counts()["waiting"] == 1


def test_a_record_of_the_wrong_type_is_named_by_both_apis(redis_client: redis.Redis) -> None:
    redis_client.set(keys.job_key("email", "odd"), "not a hash")
    expected = re.escape(f"its keys: {keys.job_key('email', 'odd')}; ")
    with pytest.raises(WrongKeyTypeError, match=expected):
        JobQueue("email").get_job("odd")

    async def read() -> None:
        try:
            await aio.JobQueue("email").get_job("odd")
        finally:
            await aio.close()

    with pytest.raises(WrongKeyTypeError, match=expected):
        asyncio.run(read())
