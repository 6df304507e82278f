"""The gateway's web edge: no session id in a URL or a log, Origins checked before the
handshake, sockets closed when their session ends, a cap per user, bounded inbound
messages, and a reader that survives a bad message and says when it is down."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from csgoflip_jobs import SessionService
from csgoflip_jobs.notifications.service import NotificationService
from tests.support.gateway_process import GatewayProcess, start_gateway
from tests.support.polling import http_status, wait_until
from tests.support.redis_servers import RedisServer, start_redis


@pytest.fixture
def gateway(tmp_path: Path, redis_client: redis.Redis) -> Iterator[GatewayProcess]:
    process = start_gateway(
        tmp_path / "gateway.log", env={"WEBSOCKET_MAX_PER_USER": "3"}, loglevel="info"
    )
    yield process
    process.stop()


async def closed_with(socket: object, timeout: float = 5) -> tuple[int | None, str]:
    with pytest.raises(ConnectionClosed) as closed:
        while True:
            await asyncio.wait_for(socket.recv(), timeout)  # type: ignore[attr-defined]
    frame = closed.value.rcvd
    return (frame.code, frame.reason) if frame else (None, "")


def test_no_session_id_reaches_a_url_or_a_log(
    gateway: GatewayProcess, redis_client: redis.Redis
) -> None:
    """The documented auth was ws://HOST/ws?session=<id>, and the access log kept it."""
    sessions = SessionService(redis_client)
    session = sessions.create(61)
    ticket = sessions.issue_ticket(session.id)
    assert ticket is not None

    async def scenario() -> tuple[list[str], tuple[int | None, str], tuple[int | None, str]]:
        seen = []
        async with gateway.signed_in(session.id) as by_message:
            NotificationService(redis_client).send(61, "hello", {})
            hello = json.loads(await asyncio.wait_for(by_message.recv(), 5))
            seen.append(hello["type"])
        cookie = {"Cookie": f"session={session.id}"}
        async with connect(gateway.ws(last_id=hello["id"]), additional_headers=cookie) as by_cookie:
            NotificationService(redis_client).send(61, "again", {})
            again = json.loads(await asyncio.wait_for(by_cookie.recv(), 5))
            seen.append(again["type"])
        # A session id in the URL is not a way in (and stays out of the log).
        async with connect(f"{gateway.ws()}?session={session.id}") as by_url:
            by_url_closed = await closed_with(by_url, 8)
        async with connect(gateway.ws(last_id=again["id"])) as by_ticket:
            await by_ticket.send(json.dumps({"ticket": ticket}))
            NotificationService(redis_client).send(61, "ticketed", {})
            seen.append(json.loads(await asyncio.wait_for(by_ticket.recv(), 5))["type"])
        async with connect(gateway.ws()) as ticket_again:
            await ticket_again.send(json.dumps({"ticket": ticket}))  # single use
            return seen, by_url_closed, await closed_with(ticket_again)

    seen, by_url, reused = asyncio.run(scenario())
    assert seen == ["hello", "again", "ticketed"]
    assert by_url[0] == 4401 and reused[0] == 4401
    log = gateway.log_path.read_text()
    assert "/ws" in log  # the access log is on
    assert session.id not in log and ticket not in log


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [
        (None, True),
        ("own", True),
        ("http://evil.example", False),
        ("null", False),
        ("http://127.0.0.1:5555", False),
    ],
)
def test_only_the_gateways_own_origin_may_open_a_socket(
    gateway: GatewayProcess, redis_client: redis.Redis, origin: str | None, allowed: bool
) -> None:
    session = SessionService(redis_client).create(62)
    headers = {"Cookie": f"session={session.id}"}
    if origin is not None:
        headers["Origin"] = gateway.http if origin == "own" else origin

    async def scenario() -> bool:
        try:
            async with connect(gateway.ws(), additional_headers=headers) as socket:
                NotificationService(redis_client).send(62, "mine", {})
                event = json.loads(await asyncio.wait_for(socket.recv(), 5))
        except InvalidStatus as refused:
            assert refused.response.status_code == 403
            return False
        return bool(event["type"] == "mine")

    assert asyncio.run(scenario()) is allowed


def test_an_allow_list_of_origins_replaces_the_own_origin(
    tmp_path: Path, redis_client: redis.Redis
) -> None:
    env = {"WEBSOCKET_ORIGINS": "https://app.example, https://www.app.example"}
    process = start_gateway(tmp_path / "listed.log", env=env)
    session = SessionService(redis_client).create(63)

    async def opens(origin: str) -> bool:
        headers = {"Cookie": f"session={session.id}", "Origin": origin}
        try:
            async with connect(process.ws(), additional_headers=headers):
                pass
        except InvalidStatus:
            return False
        return True

    try:
        assert asyncio.run(opens("https://www.app.example"))
        assert not asyncio.run(opens(process.http))  # only the listed ones now
    finally:
        process.stop()


@pytest.mark.parametrize("ending", ["one session", "all of the user's"])
def test_signing_out_closes_the_users_open_sockets(
    gateway: GatewayProcess, redis_client: redis.Redis, ending: str
) -> None:
    sessions = SessionService(redis_client)
    mine, other = sessions.create(64), sessions.create(65)

    async def scenario() -> tuple[tuple[int | None, str], float, str]:
        async with gateway.signed_in(mine.id) as socket, gateway.signed_in(other.id) as kept:
            await asyncio.sleep(0.3)
            started = time.monotonic()
            if ending == "one session":
                sessions.invalidate(mine.id)
            else:
                sessions.invalidate_all_user_sessions(64)
            closed = await closed_with(socket)
            elapsed = time.monotonic() - started
            NotificationService(redis_client).send(65, "still-here", {})
            return closed, elapsed, json.loads(await asyncio.wait_for(kept.recv(), 5))["type"]

    closed, elapsed, other_event = asyncio.run(scenario())
    assert closed == (4401, "session ended") and elapsed < 3
    assert other_event == "still-here"  # another user's socket is untouched


def test_sockets_signing_in_at_once_pass_the_cap_no_more(
    gateway: GatewayProcess, redis_client: redis.Redis
) -> None:
    """The cap was counted before the first socket's SUBSCRIBE and registered after it:
    sockets signing in meanwhile each saw room for one more."""
    session = SessionService(redis_client).create(67)

    async def outcome(socket: ClientConnection) -> str:
        try:
            await asyncio.wait_for(socket.recv(), 1.5)
        except TimeoutError:
            return "admitted"  # still open, and nothing to send yet
        except ConnectionClosed as closed:
            return str(closed.rcvd.code if closed.rcvd else None)
        return "admitted"

    async def scenario() -> list[str]:
        sockets = await asyncio.gather(*(connect(gateway.ws()) for _ in range(8)))
        await asyncio.gather(*(s.send(json.dumps({"session": session.id})) for s in sockets))
        outcomes = await asyncio.gather(*(outcome(s) for s in sockets))
        await asyncio.gather(*(s.close() for s in sockets))
        return sorted(outcomes)

    for _ in range(5):
        assert asyncio.run(scenario()) == ["4429"] * 5 + ["admitted"] * 3
        wait_until(lambda: gateway.stats()["clients"] == 0, 5)


def test_a_user_holds_at_most_the_cap_of_sockets(
    gateway: GatewayProcess, redis_client: redis.Redis
) -> None:
    session = SessionService(redis_client).create(66)

    async def scenario() -> tuple[int | None, str]:
        sockets = [await connect(gateway.ws()) for _ in range(3)]
        for socket in sockets:
            await socket.send(json.dumps({"session": session.id}))
        await asyncio.sleep(0.5)
        async with gateway.signed_in(session.id) as fourth:
            result = await closed_with(fourth)
        for socket in sockets:
            await socket.close()
        return result

    assert asyncio.run(scenario()) == (4429, "too many live connections")
    wait_until(lambda: gateway.stats()["clients"] == 0, 5)


def test_a_message_over_the_inbound_cap_closes_the_socket(
    gateway: GatewayProcess, redis_client: redis.Redis
) -> None:
    session = SessionService(redis_client).create(67)

    async def scenario() -> int | None:
        async with gateway.signed_in(session.id) as socket:
            await socket.send("x" * 10_000)  # WEBSOCKET_MAX_MESSAGE_BYTES is 4096
            return (await closed_with(socket))[0]

    assert asyncio.run(scenario()) == 1009


def test_a_message_that_is_not_text_is_skipped_and_delivery_goes_on(
    gateway: GatewayProcess, redis_client: redis.Redis
) -> None:
    """A non-UTF-8 pub/sub message ended the gateway's reader, silently, for everyone."""
    session = SessionService(redis_client).create(68)
    broadcast = NotificationService(redis_client).channel(None)

    async def scenario() -> str:
        async with gateway.signed_in(session.id) as socket:
            await asyncio.sleep(0.3)
            redis_client.publish(broadcast, b"\xff\xfe not text")
            NotificationService(redis_client).send(68, "after", {})
            return str(json.loads(await asyncio.wait_for(socket.recv(), 5))["type"])

    assert asyncio.run(scenario()) == "after"
    assert gateway.stats()["unreadable"] == 1
    assert httpx.get(f"{gateway.http}/healthz", timeout=5).status_code == 200
    assert "not UTF-8" in gateway.log_path.read_text()


def test_healthz_fails_while_the_reader_is_down_and_recovers(
    tmp_path: Path, servers: Callable[..., RedisServer]
) -> None:
    server = servers()
    env = {"REDIS_URL": server.url, "REDIS_CONNECT_TIMEOUT_S": "0.5"}
    process = start_gateway(tmp_path / "own-redis.log", env=env)

    def health() -> int:
        return http_status(f"{process.http}/healthz", timeout=5)

    try:
        assert health() == 200
        server.stop()
        wait_until(lambda: health() == 503, 15)
        restarted = start_redis(port=server.port)
        try:
            wait_until(lambda: health() == 200, 20)
        finally:
            restarted.stop()
    finally:
        process.stop()
