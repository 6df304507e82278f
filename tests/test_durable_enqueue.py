"""Durable enqueue (REDIS_MIN_REPLICAS_ACK): ``add`` and ``add_bulk`` return only once a
replica holds the job, else say that the job may or may not survive a failover and
that adding it again under its job_id is safe. A private master and replica on
127.0.0.1; the replica is paused (SIGSTOP) to stand for one that lags or is gone.
"""

from __future__ import annotations

import asyncio
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from celery import Celery

from csgoflip_jobs import JobQueue
from csgoflip_jobs.engine import scripts
from csgoflip_jobs.helpers.connection import make_client
from csgoflip_jobs.helpers.errors import BrokerNotReplicatedError
from csgoflip_jobs.helpers.redlock import RedlockService
from csgoflip_jobs.keys import job_key, withdrawal_job_id
from csgoflip_jobs.payments.database import make_engine, migrate, session_factory
from csgoflip_jobs.payments.gateways import SandboxGateway
from csgoflip_jobs.payments.service import PaymentService
from csgoflip_jobs.settings import get_settings
from tests.support.databases import sqlite_url
from tests.support.environment import pointing
from tests.support.payment_helpers import funded_user, withdrawal_statuses
from tests.support.polling import wait_until
from tests.support.redis_servers import RedisServer, start_redis

pytestmark = pytest.mark.fault

ACK_TIMEOUT_MS = 300


@pytest.fixture
def pair() -> Iterator[tuple[RedisServer, RedisServer]]:
    """A master and a replica in sync with it: a write is acknowledged by the replica.
    (After the initial sync the master streams nothing until the replica's first
    REPLCONF ACK, up to a second after the link is up.)"""
    master = start_redis()
    replica = start_redis("--replicaof", "127.0.0.1", str(master.port))
    client = redis.Redis(port=master.port)

    def acknowledged() -> bool:
        probe = client.pipeline(transaction=False)  # the WAIT is for this connection's write
        probe.publish("sync-probe", "")
        probe.execute_command("WAIT", 1, 100)
        return bool(probe.execute()[-1] == 1)

    try:
        wait_until(acknowledged, 20)
        yield master, replica
    finally:
        os.kill(replica.process.pid, signal.SIGCONT)
        replica.stop()
        master.stop()


@pytest.fixture
def use_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, str]], Celery]]:
    """Point this process at other settings; returns a Celery app built from them."""
    yield from pointing(monkeypatch)


@pytest.fixture
def durable(pair: tuple[RedisServer, RedisServer], use_env: Callable[..., Celery]) -> Celery:
    """This process on the pair's master, with REDIS_MIN_REPLICAS_ACK=1."""
    env = {
        "REDIS_URL": pair[0].url,
        "REDIS_MIN_REPLICAS_ACK": "1",
        "REDIS_REPLICA_ACK_TIMEOUT_MS": str(ACK_TIMEOUT_MS),
    }
    return use_env(env)


def paused(server: RedisServer) -> Any:
    """SIGSTOP ``server`` until the block ends (its replication link stalls)."""

    class Paused:
        def __enter__(self) -> None:
            os.kill(server.process.pid, signal.SIGSTOP)

        def __exit__(self, *_: object) -> None:
            os.kill(server.process.pid, signal.SIGCONT)

    return Paused()


def test_a_durable_add_returns_once_the_replica_holds_the_job(
    pair: tuple[RedisServer, RedisServer], durable: Celery
) -> None:
    replica = redis.Redis(port=pair[1].port)
    queue = JobQueue("notification", app=durable)
    one = queue.add("test-record", {"n": 1})
    assert replica.exists(
        job_key("notification", one)
    )  # read from the replica the moment add returned
    many = queue.add_bulk([{"name": "test-record", "data": {"n": n}} for n in range(50)])
    assert replica.exists(*[job_key("notification", job_id) for job_id in many]) == 50


def test_without_the_replica_in_time_the_error_says_so_and_adding_again_is_safe(
    pair: tuple[RedisServer, RedisServer], durable: Celery
) -> None:
    master, replica = (redis.Redis(port=server.port) for server in pair)
    queue = JobQueue("notification", app=durable)
    with paused(pair[1]):
        started = time.monotonic()
        with pytest.raises(BrokerNotReplicatedError) as caught:
            queue.add("test-record", {"n": 1}, job_id="durable-1")
        assert ACK_TIMEOUT_MS / 1000 <= time.monotonic() - started < ACK_TIMEOUT_MS / 1000 + 1
        message = str(caught.value)
        assert "only 0 of the 1 replicas REDIS_MIN_REPLICAS_ACK asks for" in message
        assert "may or may not survive a failover" in message
        assert "adding it again with the same job_id is safe" in message
        assert caught.value.stored_ids == ["durable-1"]
        assert master.exists(job_key("notification", "durable-1"))  # the master holds it
        # Another client (another connection, no write of its own yet) re-adds: the job
        # exists, so nothing is written, yet the answer must still be "not replicated".
        other = JobQueue("notification", app=durable, client=make_client(get_settings().broker_url))
        with pytest.raises(BrokerNotReplicatedError):
            other.add("test-record", {"n": 1}, job_id="durable-1")
        with pytest.raises(BrokerNotReplicatedError) as bulk:
            queue.add_bulk(
                [{"name": "test-record", "data": {"n": 2}, "opts": {"job_id": "durable-2"}}]
            )
        assert bulk.value.stored_ids == ["durable-2"]
    assert other.add("test-record", {"n": 1}, job_id="durable-1") == "durable-1"
    assert queue.add_bulk(
        [{"name": "test-record", "data": {"n": 2}, "opts": {"job_id": "durable-2"}}]
    )
    assert (
        replica.exists(job_key("notification", "durable-1"), job_key("notification", "durable-2"))
        == 2
    )
    assert queue.get_job_counts()["waiting"] == 2  # each stored once


def test_wait_follows_the_enqueue_re_run_after_noscript_on_its_connection(
    pair: tuple[RedisServer, RedisServer], durable: Celery
) -> None:
    """A master without the scripts (after a restart or a failover: a promoted replica
    never had them) answers NOSCRIPT; the ENQUEUE is run again once they are loaded. WAIT
    counts only the writes of its own connection, so it must come after that re-run, on
    the same connection, or add would return before the replica has the job."""
    master = redis.Redis(port=pair[0].port)
    queue = JobQueue("notification", app=durable)
    queue.add("test-record", {"n": 0})  # the app and its connection are set up
    master.script_flush()
    commands: list[dict[str, Any]] = []
    with master.monitor() as monitor:

        def record() -> None:
            while (command := monitor.next_command())["command"] != "PING stop":
                commands.append(command)

        reader = threading.Thread(target=record)
        reader.start()
        try:
            job_id = queue.add("test-record", {"n": 1})
        finally:
            redis.Redis(port=pair[0].port).execute_command("PING", "stop")
            reader.join(10)
    assert redis.Redis(port=pair[1].port).exists(job_key("notification", job_id))
    enqueues = [c for c in commands if c["command"].startswith(f"EVALSHA {scripts.ENQUEUE.sha}")]
    waits = [c for c in commands if c["command"].startswith("WAIT ")]
    assert len(enqueues) == 2, commands  # refused (NOSCRIPT), then run again
    assert len(waits) == 2, commands  # one after each, the second after the re-run
    last_enqueue, last_wait = enqueues[-1], waits[-1]
    assert commands.index(last_wait) > commands.index(last_enqueue)
    same = ("client_address", "client_port")
    assert [last_wait[k] for k in same] == [last_enqueue[k] for k in same]


def test_a_withdrawal_is_on_the_replica_before_request_withdrawal_returns(
    pair: tuple[RedisServer, RedisServer], durable: Celery, tmp_path: Path
) -> None:
    url = sqlite_url(tmp_path)
    migrate(url)
    sessions = session_factory(make_engine(url))
    lock = RedlockService([make_client(get_settings().broker_url)])
    service = PaymentService(
        sessions, SandboxGateway(sessions), lock, JobQueue("payment", app=durable)
    )
    replica = redis.Redis(port=pair[1].port)
    user = funded_user(service, 10_000)
    first = service.request_withdrawal(user, 1_000)
    assert replica.exists(job_key("payment", withdrawal_job_id(first)))
    with paused(pair[1]), pytest.raises(BrokerNotReplicatedError):
        service.request_withdrawal(user, 2_000)
    # Recorded and reserved before the enqueue; its job is on the master, and adding it
    # again (here, or the stuck-withdrawal sweep) is safe.
    second = first + 1
    assert withdrawal_statuses(service) == {"pending": 2}
    assert service.get_balance(user) == 7_000
    assert service.schedule_withdrawal_processing(second) == withdrawal_job_id(second)
    assert replica.exists(job_key("payment", withdrawal_job_id(second)))


def test_the_asyncio_api_is_durable_too(
    pair: tuple[RedisServer, RedisServer], durable: Celery
) -> None:
    """The same steps on redis.asyncio: the WAIT ends the batch, also after NOSCRIPT."""
    from csgoflip_jobs import aio

    replica = redis.Redis(port=pair[1].port)

    async def scenario() -> None:
        queue = aio.JobQueue("notification", app=durable)
        first = await queue.add("test-record", {"n": 1})
        assert replica.exists(job_key("notification", first))
        redis.Redis(port=pair[0].port).script_flush()  # as a promoted replica has none
        many = await queue.add_bulk([{"name": "test-record", "data": {"n": n}} for n in range(20)])
        assert replica.exists(*[job_key("notification", job_id) for job_id in many]) == 20
        with paused(pair[1]), pytest.raises(BrokerNotReplicatedError) as caught:
            await queue.add("test-record", {"n": 2}, job_id="async-durable")
        assert caught.value.stored_ids == ["async-durable"]
        assert await queue.add("test-record", {"n": 2}, job_id="async-durable") == "async-durable"
        assert replica.exists(job_key("notification", "async-durable"))
        await aio.close()

    asyncio.run(scenario())
