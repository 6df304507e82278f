"""The WebSocket gateway: live notifications to browsers.

``csgoflip-jobs gateway`` serves this ASGI app (Starlette on uvicorn):

* ``/ws?session=<id>[&last_id=<notification id>]``: the client authenticates
  with its session id (SessionService.validate); no or an invalid session
  closes the socket with code 4401. On connect the client first gets the
  notifications it missed (newer than ``last_id``, from the user's capped
  list), then live ones.
* One gateway process uses ONE Redis pub/sub connection for all its clients
  (:class:`Hub`). Each client has a bounded queue: when a slow client falls
  behind, its oldest messages are dropped and counted, and nobody else waits.
* ``/demo`` is a small page showing a signed-in user's live events;
  ``/stats`` reports clients, channels and dropped messages.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import AsyncIterator
from pathlib import Path

import redis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from csgoflip_jobs import keys
from csgoflip_jobs.helpers.clients import make_async_client
from csgoflip_jobs.helpers.connection import as_text, make_bounded_client
from csgoflip_jobs.helpers.sessions import SessionService
from csgoflip_jobs.notifications.service import Notification, NotificationService
from csgoflip_jobs.settings import get_settings

log = logging.getLogger(__name__)

CLOSE_UNAUTHORIZED = 4401
PUBSUB_CLIENT_NAME = "csgoflip-gateway-pubsub"
COMMAND_CLIENT_NAME = "csgoflip-gateway"
COMMAND_CONNECTIONS = 2
"""Connections for session checks and catch-up reads, however many clients connect."""

DEMO_PAGE = Path(__file__).resolve().parent / "static" / "demo.html"


def client_name(role: str, pid: int | None = None) -> str:
    """The Redis client name of a gateway process's connections of one role
    (PUBSUB_CLIENT_NAME or COMMAND_CLIENT_NAME): CLIENT LIST then tells which
    process holds which connection."""
    return f"{role}-{os.getpid() if pid is None else pid}"


class Client:
    """One connected browser: its user and a bounded queue of messages to send."""

    def __init__(self, user_id: int, queue_size: int) -> None:
        self.user_id = user_id
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.dropped = 0

    def offer(self, message: str) -> None:
        """Queue a message without waiting; a full queue drops its oldest."""
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(message)


class Hub:
    """The gateway's single pub/sub connection and the clients listening on it."""

    def __init__(self, url: str, namespace: str | None = None) -> None:
        """Listen on the Redis at ``url``, on the channels of ``namespace`` (default:
        Settings.channel_namespace, as NotificationService publishes)."""
        self._namespace = get_settings().channel_namespace if namespace is None else namespace
        self._redis = make_async_client(
            url,
            client_name=client_name(PUBSUB_CLIENT_NAME),
            retry=AsyncRetry(NoBackoff(), 0),  # the reader loop below reconnects by itself
            retry_on_error=[],
        )
        self._pubsub = self._redis.pubsub(ignore_subscribe_messages=True)
        self._listeners: dict[str, set[Client]] = {}
        self._clients: set[Client] = set()
        self._reader: asyncio.Task[None] | None = None
        self.dropped_total = 0

    async def start(self) -> None:
        """Subscribe to site-wide events and start reading."""
        await self._pubsub.subscribe(keys.broadcast_channel(self._namespace))
        self._reader = asyncio.create_task(self._read(), name="gateway-pubsub-reader")

    async def close(self) -> None:
        """Stop reading and close the connection."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._redis.aclose()

    async def add(self, client: Client) -> None:
        """Start delivering the client's user channel (and broadcasts) to it."""
        channel = keys.user_channel(self._namespace, client.user_id)
        if channel not in self._listeners:
            self._listeners[channel] = set()
            await self._pubsub.subscribe(channel)
        self._listeners[channel].add(client)
        self._clients.add(client)

    async def remove(self, client: Client) -> None:
        """Stop delivering to the client; unsubscribe its channel if it was the last."""
        self._clients.discard(client)
        self.dropped_total += client.dropped
        channel = keys.user_channel(self._namespace, client.user_id)
        listeners = self._listeners.get(channel)
        if listeners is None:
            return
        listeners.discard(client)
        if not listeners:
            del self._listeners[channel]
            with contextlib.suppress(redis.RedisError):
                await self._pubsub.unsubscribe(channel)

    def stats(self) -> dict[str, int]:
        """Clients, subscribed user channels and messages dropped for slow clients."""
        live_drops = sum(client.dropped for client in self._clients)
        return {
            "clients": len(self._clients),
            "user_channels": len(self._listeners),
            "dropped": self.dropped_total + live_drops,
        }

    async def _read(self) -> None:
        while True:
            try:
                message = await self._pubsub.get_message(timeout=1.0)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                # The next read reconnects and re-subscribes every channel.
                log.warning("gateway pub/sub connection lost (%s); reconnecting", exc)
                await asyncio.sleep(0.5)
                continue
            if message and message.get("type") == "message":
                self._dispatch(as_text(message["channel"]), as_text(message["data"]))

    def _dispatch(self, channel: str, data: str) -> None:
        targets = (
            self._clients
            if channel == keys.broadcast_channel(self._namespace)
            else self._listeners.get(channel, ())
        )
        for client in targets:
            client.offer(data)


class Gateway:
    """The app's state: the hub, and sync services run in a thread for Redis commands."""

    def __init__(self) -> None:
        settings = get_settings()
        commands = make_bounded_client(
            settings.broker_url, COMMAND_CONNECTIONS, client_name=client_name(COMMAND_CLIENT_NAME)
        )
        self.hub = Hub(settings.broker_url)
        self.sessions = SessionService(commands)
        self.notifications = NotificationService(commands)
        self.queue_size = settings.gateway_client_queue_size

    async def serve(self, websocket: WebSocket) -> None:
        """Authenticate, send what the client missed, then stream live notifications."""
        await websocket.accept()
        session_id = websocket.query_params.get("session") or websocket.cookies.get("session")
        session = await run_in_threadpool(self.sessions.validate, session_id or "")
        if session is None or not isinstance(session.user_id, int):
            await websocket.close(code=CLOSE_UNAUTHORIZED, reason="invalid or missing session")
            return
        client = Client(session.user_id, self.queue_size)
        await self.hub.add(client)  # first, so nothing published meanwhile is missed
        try:
            sent = await self._catch_up(websocket, client, websocket.query_params.get("last_id"))
            await _stream(websocket, client, sent)
        except WebSocketDisconnect:
            pass
        finally:
            await self.hub.remove(client)

    async def _catch_up(
        self, websocket: WebSocket, client: Client, last_id: str | None
    ) -> set[str]:
        recent: list[Notification] = await run_in_threadpool(
            self.notifications.recent, client.user_id
        )
        missed: list[Notification] = []
        for notification in recent:  # newest first
            if notification.id == last_id:
                break
            missed.append(notification)
        for notification in reversed(missed):
            await websocket.send_text(notification.to_json())
        return {n.id for n in missed}


async def _stream(websocket: WebSocket, client: Client, already_sent: set[str]) -> None:
    """Send queued messages until the client goes away (noticed by the receiver task)."""
    receiver = asyncio.create_task(_until_disconnect(websocket))
    try:
        while not receiver.done():
            getter = asyncio.create_task(client.queue.get())
            done, _ = await asyncio.wait({getter, receiver}, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                getter.cancel()
                break
            message = getter.result()
            if already_sent and json.loads(message).get("id") in already_sent:
                continue  # sent during catch-up already
            await websocket.send_text(message)
    finally:
        receiver.cancel()


async def _until_disconnect(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


def create_app() -> Starlette:
    """The gateway's ASGI app."""
    gateway = Gateway()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        await gateway.hub.start()
        yield
        await gateway.hub.close()

    async def stats(_request: Request) -> JSONResponse:
        return JSONResponse(gateway.hub.stats())

    async def demo(_request: Request) -> HTMLResponse:
        return HTMLResponse(DEMO_PAGE.read_text())

    async def health(_request: Request) -> JSONResponse:
        return JSONResponse({"ok": True})

    return Starlette(
        routes=[
            WebSocketRoute("/ws", gateway.serve),
            Route("/stats", stats),
            Route("/demo", demo),
            Route("/healthz", health),
        ],
        lifespan=lifespan,
    )
