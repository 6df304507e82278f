"""The WebSocket gateway with a real websockets client, real sessions and real workers."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from csgoflip_jobs import JobQueue, SessionService
from csgoflip_jobs.notifications.gateway import COMMAND_CLIENT_NAME, PUBSUB_CLIENT_NAME, client_name
from csgoflip_jobs.notifications.service import NotificationService
from tests.support.gateway_process import GatewayProcess, start_gateway
from tests.support.workers import WorkerProcess


@pytest.fixture
def gateway(tmp_path: Path, redis_client: redis.Redis) -> Iterator[GatewayProcess]:
    process = start_gateway(tmp_path / "gateway.log", env={"GATEWAY_CLIENT_QUEUE_SIZE": "200"})
    yield process
    process.stop()


def gateway_connections(client: redis.Redis, pid: int) -> dict[str, int]:
    """The gateway process ``pid``'s Redis connections, by role."""
    names = [c.get("name") for c in client.client_list()]
    return {
        role: names.count(client_name(role, pid))
        for role in (PUBSUB_CLIENT_NAME, COMMAND_CLIENT_NAME)
    }


async def receive_json(socket: Any, timeout: float) -> dict[str, Any]:
    return dict(json.loads(await asyncio.wait_for(socket.recv(), timeout)))


def test_a_queued_notification_reaches_a_signed_in_client_within_1s(
    gateway: GatewayProcess, workers: Callable[..., WorkerProcess], redis_client: redis.Redis
) -> None:
    workers(queues="notification")
    session = SessionService(redis_client).create(21)

    async def scenario() -> tuple[dict[str, Any], float]:
        async with gateway.signed_in(session.id) as socket:
            await asyncio.sleep(0.2)  # subscribed
            sent_at = time.monotonic()
            JobQueue("notification").add(
                "send-notification",
                {"user_id": 21, "type": "case-opened", "payload": {"item": "AWP | Dragon Lore"}},
            )
            event = await receive_json(socket, 5)
            return event, time.monotonic() - sent_at

    event, latency = asyncio.run(scenario())
    assert event["type"] == "case-opened" and event["payload"] == {"item": "AWP | Dragon Lore"}
    assert latency < 1.0


@pytest.mark.parametrize("session", ["", "not-a-session"])
def test_no_or_an_invalid_session_is_closed_with_4401(
    gateway: GatewayProcess, session: str
) -> None:
    async def scenario() -> int | None:
        async with gateway.signed_in(session) as socket:
            with pytest.raises(ConnectionClosed) as closed:
                await asyncio.wait_for(socket.recv(), 5)
            return closed.value.rcvd.code if closed.value.rcvd else None

    assert asyncio.run(scenario()) == 4401


def test_200_clients_share_one_pubsub_connection(
    gateway: GatewayProcess, redis_client: redis.Redis
) -> None:
    sessions = SessionService(redis_client)
    ids = [sessions.create(1000 + n).id for n in range(200)]

    async def scenario() -> tuple[dict[str, int], dict[str, int], int]:
        async with gateway.signed_in(ids[0]) as first:
            await asyncio.sleep(0.3)
            with_one = gateway_connections(redis_client, gateway.process.pid)
            sockets = [await connect(gateway.ws()) for _ in ids[1:]]
            for socket, session_id in zip(sockets, ids[1:], strict=True):
                await socket.send(json.dumps({"session": session_id}))
            await asyncio.sleep(0.5)
            with_200 = gateway_connections(redis_client, gateway.process.pid)
            clients = gateway.stats()["clients"]
            NotificationService(redis_client).send(None, "jackpot", {"amount": 5000})
            got = [await receive_json(s, 5) for s in [first, *sockets]]
            assert all(event["type"] == "jackpot" for event in got)
            for socket in sockets:
                await socket.close()
            return with_one, with_200, clients

    with_one, with_200, clients = asyncio.run(scenario())
    assert clients == 200
    assert with_one[PUBSUB_CLIENT_NAME] == with_200[PUBSUB_CLIENT_NAME] == 1
    assert with_200[COMMAND_CLIENT_NAME] <= 2  # a fixed pool, whatever the client count


def test_a_client_that_reconnects_gets_what_it_missed(
    gateway: GatewayProcess, redis_client: redis.Redis
) -> None:
    session = SessionService(redis_client).create(33)
    notifications = NotificationService(redis_client)

    async def scenario() -> list[int]:
        async with gateway.signed_in(session.id) as socket:
            await asyncio.sleep(0.2)
            notifications.send(33, "tick", {"n": 1})
            last = await receive_json(socket, 5)
        notifications.send(33, "tick", {"n": 2})  # while disconnected
        notifications.send(33, "tick", {"n": 3})
        async with gateway.signed_in(session.id, last_id=last["id"]) as socket:
            caught_up = [await receive_json(socket, 5) for _ in range(2)]
            await asyncio.sleep(0.1)
            notifications.send(33, "tick", {"n": 4})
            live = await receive_json(socket, 5)
        return [event["payload"]["n"] for event in [last, *caught_up, live]]

    assert asyncio.run(scenario()) == [1, 2, 3, 4]


def small_buffer_socket(gateway: GatewayProcess) -> socket.socket:
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect(("127.0.0.1", gateway.port))
    return sock


def test_a_slow_client_loses_its_oldest_messages_and_delays_nobody(
    gateway: GatewayProcess, redis_client: redis.Redis
) -> None:
    sessions = SessionService(redis_client)
    slow_session, fast_session = sessions.create(41), sessions.create(42)
    batches, per_batch = 40, 25  # 1000 messages of 12 KB: 12 MB, past the slow one's buffers
    broadcast = NotificationService(redis_client).channel(None)

    def publish() -> None:
        for batch in range(batches):
            with redis_client.pipeline(transaction=False) as pipe:
                for n in range(per_batch):
                    # Random, so permessage-deflate cannot shrink it.
                    blob = os.urandom(6144).hex()
                    message = {"id": f"{batch}-{n}", "type": "flood", "payload": {"b": blob}}
                    pipe.publish(broadcast, json.dumps(message))
                pipe.execute()
            time.sleep(0.05)

    async def scenario() -> tuple[int, float]:
        # The slow client never reads (and has a small socket buffer, so the kernel
        # cannot absorb it all): the gateway's sends to it block, its queue overflows.
        async with (
            gateway.signed_in(
                slow_session.id, max_queue=1, sock=small_buffer_socket(gateway)
            ) as _slow,
            gateway.signed_in(fast_session.id) as fast,
        ):
            await asyncio.sleep(0.3)
            started = time.monotonic()
            publishing = asyncio.create_task(asyncio.to_thread(publish))
            for _ in range(batches * per_batch):
                await receive_json(fast, 10)
            await publishing
            return batches * per_batch, time.monotonic() - started

    received, elapsed = asyncio.run(scenario())
    assert received == batches * per_batch
    assert elapsed < 20
    assert gateway.stats()["dropped"] > 0
