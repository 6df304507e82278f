"""The example web app's edge: real accounts, sign-out that ends the live sockets, JSON
and Origin checked on every POST and socket, Secure cookies behind TLS, the sign-in
limit on the real peer, and one payment-event reader however many sockets are open."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import httpx
import pytest
import redis
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidStatus

from tests.support.browser import chromium, screenshot_path
from tests.support.polling import wait_until
from tests.support.webapp import running_webapp
from tests.support.workers import WorkerProcess

PASSWORD = "correct horse battery"


@pytest.fixture
def webapp(
    tmp_path: Path, redis_client: redis.Redis, workers: Callable[..., WorkerProcess]
) -> Iterator[str]:
    with running_webapp(tmp_path, workers, {"WEBSOCKET_MAX_PER_USER": "40"}) as url:
        yield url


def signed_up(webapp: str, name: str) -> httpx.Client:
    """A client signed up as ``name`` (close it, or use it in ``with closing(...)``)."""
    client = httpx.Client(base_url=webapp, timeout=10)
    answer = client.post("/api/sign-up", json={"name": name, "password": PASSWORD})
    assert answer.status_code == 200, answer.text
    return client


def test_a_name_alone_is_no_way_into_an_account(webapp: str, redis_client: redis.Redis) -> None:
    """Typing an existing name used to sign in as that player."""
    with (
        closing(signed_up(webapp, "alice")) as alice,
        httpx.Client(base_url=webapp, timeout=10) as eve,
    ):
        user_id = alice.get("/api/me").json()["user_id"]
        taken = eve.post("/api/sign-up", json={"name": "alice", "password": "another one!"})
        assert taken.status_code == 409 and "taken" in taken.json()["error"]
        wrong = eve.post("/api/sign-in", json={"name": "alice", "password": "guess guess"})
        assert wrong.status_code == 401 and wrong.json()["error"] == "wrong name or password"
        nobody = eve.post("/api/sign-in", json={"name": "nobody", "password": "guess guess"})
        assert nobody.status_code == 401 and nobody.json() == wrong.json()
        assert eve.get("/api/me").status_code == 401
        right = eve.post("/api/sign-in", json={"name": "alice", "password": PASSWORD})
        assert right.status_code == 200 and right.json()["user_id"] == user_id
    stored = redis_client.hget("examples:webapp:users", "alice")
    assert stored and PASSWORD.encode() not in stored and b"$argon2id$" in stored


def test_posts_need_json_from_this_site(webapp: str) -> None:
    """A text/plain POST needs no CORS preflight and carried the cookie into a change."""
    with closing(signed_up(webapp, "carol")) as carol:
        short = carol.post("/api/sign-up", json={"name": "bob", "password": "short"})
        assert short.status_code == 400 and "a password of 8 to 128" in short.json()["error"]
        plain = carol.post("/api/deposits", content='{"amount": 500}',
                           headers={"Content-Type": "text/plain"})  # fmt: skip
        assert plain.status_code == 415
        form = carol.post("/api/deposits", data={"amount": "500"})
        assert form.status_code == 415
        elsewhere = carol.post(
            "/api/deposits", json={"amount": 500}, headers={"Origin": "http://evil.example"}
        )
        assert elsewhere.status_code == 403
        own = carol.post("/api/deposits", json={"amount": 500}, headers={"Origin": webapp})
        assert own.status_code == 200
        wait_until(lambda: carol.get("/api/me").json()["balance"] == 500, 20)


def test_the_sign_in_limit_is_on_the_real_peer(webapp: str) -> None:
    """X-Forwarded-For from loopback was believed: rotating it bypassed the limit."""
    with httpx.Client(base_url=webapp, timeout=10) as client:
        codes = [
            client.post("/api/sign-in", json={"name": "dave", "password": "guess guess"},
                        headers={"X-Forwarded-For": f"203.0.113.{n}"}).status_code
            for n in range(6)
        ]  # fmt: skip
    assert codes == [401] * 5 + [429]


def test_cookies_are_secure_behind_a_trusted_tls_proxy(
    tmp_path: Path, redis_client: redis.Redis, workers: Callable[..., WorkerProcess]
) -> None:
    with running_webapp(tmp_path, workers, {"TRUSTED_PROXIES": "127.0.0.1"}) as url:
        answer = httpx.post(
            f"{url}/api/sign-up",
            json={"name": "erin", "password": PASSWORD},
            headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "198.51.100.7"},
            timeout=10,
        )
        plain = httpx.post(f"{url}/api/sign-up", json={"name": "frank", "password": PASSWORD},
                           timeout=10)  # fmt: skip
    assert answer.status_code == 200 and "secure" in answer.headers["set-cookie"].lower()
    assert "secure" not in plain.headers["set-cookie"].lower()


async def receive_update(socket: object, timeout: float = 20) -> dict[str, object]:
    return dict(json.loads(await asyncio.wait_for(socket.recv(), timeout)))  # type: ignore[attr-defined]


def test_sign_out_closes_the_sessions_sockets_and_another_origin_is_refused(
    webapp: str,
) -> None:
    with closing(signed_up(webapp, "gina")) as gina:
        cookie = {"Cookie": f"session={gina.cookies['session']}"}
        ws = webapp.replace("http", "ws") + "/ws"

        async def scenario() -> tuple[int | None, str]:
            with pytest.raises(InvalidStatus) as refused:
                async with connect(
                    ws, additional_headers={**cookie, "Origin": "http://evil.example"}
                ):
                    pass
            assert refused.value.response.status_code == 403
            async with connect(ws, additional_headers={**cookie, "Origin": webapp}) as socket:
                await asyncio.sleep(0.3)
                out = await asyncio.to_thread(gina.post, "/api/sign-out", json={})
                assert out.status_code == 200
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(socket.recv(), 5)
            frame = closed.value.rcvd
            return (frame.code, frame.reason) if frame else (None, "")

        assert asyncio.run(scenario()) == (4401, "session ended")
        assert gina.get("/api/me").status_code == 401


def test_one_event_reader_however_many_sockets(webapp: str, redis_client: redis.Redis) -> None:
    """Each socket ran its own XREAD BLOCK on the queue Redis (200 sockets: 99 more
    Redis clients), and every payment event made every socket query the database."""
    clients = [signed_up(webapp, f"player-{n}") for n in range(4)]
    ws = webapp.replace("http", "ws") + "/ws"

    def redis_clients() -> int:
        return len(redis_client.client_list())

    async def scenario() -> tuple[int, int, list[dict[str, object]]]:
        async def opened(client: httpx.Client) -> ClientConnection:
            cookie = {"Cookie": f"session={client.cookies['session']}"}
            socket = await connect(ws, additional_headers=cookie)
            # Let the app sign it in before the next: sign-ins at once would borrow
            # connections side by side, and what is measured is what each socket keeps.
            await asyncio.sleep(0.05)
            return socket

        sockets = [await opened(client) for client in clients]  # each user's first
        await asyncio.sleep(0.5)
        before = redis_clients()
        for client in clients:
            sockets += [await opened(client) for _ in range(9 if client is clients[0] else 8)]
        await asyncio.sleep(0.5)
        after = redis_clients()
        await asyncio.to_thread(clients[0].post, "/api/deposits", json={"amount": 700})
        mine = [sockets[0], *sockets[len(clients) : len(clients) + 9]]
        updates = [await receive_update(s) for s in mine]
        for socket in sockets:
            await socket.close()
        return before, after, updates

    before, after, updates = asyncio.run(scenario())
    # 33 more sockets: the Redis clients stay flat (each socket's own reader added about
    # one client per two sockets); a little slack for the worker's own connections.
    assert after - before <= 3, (before, after)
    assert len(updates) == 10 and all("withdrawals" in u for u in updates)
    for client in clients:
        client.close()


def test_signing_out_in_another_tab_closes_the_live_page(webapp: str) -> None:
    with chromium() as browser:
        context = browser.new_context(viewport={"width": 1000, "height": 700})
        live = context.new_page()
        live.goto(webapp)
        live.fill("#name", "hank")
        live.fill("#password", PASSWORD)
        live.click("#sign-up-button")
        live.wait_for_function("document.getElementById('live').textContent.includes('live')")
        other = context.new_page()  # the same browser: the same session cookie
        other.goto(webapp)
        other.wait_for_selector("#wallet:not(.hidden)")
        other.click("#sign-out-button")
        live.wait_for_function(
            "document.getElementById('live').textContent.includes('signed out')", timeout=10_000
        )
        assert live.is_visible("#sign-in") and "signed out" in live.inner_text("#message")
        live.screenshot(path=str(screenshot_path("webapp-signed-out")))


def test_a_big_message_from_the_page_closes_its_socket(webapp: str) -> None:
    """Neither app reads what a page sends, yet 16 MiB messages were accepted."""
    with closing(signed_up(webapp, "ivan")) as ivan:
        cookie = {"Cookie": f"session={ivan.cookies['session']}"}
        ws = webapp.replace("http", "ws") + "/ws"

        async def scenario() -> int | None:
            async with connect(ws, additional_headers=cookie) as socket:
                await socket.send("x" * 10_000)  # WEBSOCKET_MAX_MESSAGE_BYTES is 4096
                with pytest.raises(ConnectionClosed) as closed:
                    await asyncio.wait_for(socket.recv(), 5)
            return closed.value.rcvd.code if closed.value.rcvd else None

        assert asyncio.run(scenario()) == 1009
