"""One pub/sub connection per process feeding every live socket of the process.

:class:`Hub` subscribes to the broadcast channel, each connected user's channel (once,
however many sockets the user has) and the sessions-ended channel, and hands each
message to the :class:`Client` of every socket it concerns. Invariants: a slow client
only ever loses its own oldest messages; a message the hub cannot read is logged and
skipped, never the end of delivery; a socket whose session ended is told so at once;
``healthy`` is False while the reader has no working connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os

import redis
from redis.asyncio.retry import Retry as AsyncRetry
from redis.backoff import NoBackoff

from csgoflip_jobs import keys
from csgoflip_jobs.helpers.clients import make_async_client
from csgoflip_jobs.helpers.subscriptions import log_unreadable, message_of
from csgoflip_jobs.settings import get_settings

PUBSUB_CLIENT_NAME = "csgoflip-gateway-pubsub"
RECONNECT_WAIT_S = 0.5

log = logging.getLogger(__name__)


def client_name(role: str, pid: int | None = None) -> str:
    """The Redis client name of a gateway process's connections of one role
    (PUBSUB_CLIENT_NAME or the gateway's command role): CLIENT LIST then tells which
    process holds which connection."""
    return f"{role}-{os.getpid() if pid is None else pid}"


class Client:
    """One live socket: its user, its session's fingerprint and a bounded queue."""

    def __init__(self, user_id: int, session_fingerprint: str, queue_size: int) -> None:
        self.user_id = user_id
        self.session_fingerprint = session_fingerprint
        self.queue: asyncio.Queue[str] = asyncio.Queue(maxsize=queue_size)
        self.dropped = 0
        self.ended = asyncio.Event()
        """Set when the socket's session ended (signed out): the socket must close."""

    def offer(self, message: str) -> None:
        """Queue a message without waiting; a full queue drops its oldest."""
        if self.queue.full():
            self.queue.get_nowait()
            self.dropped += 1
        self.queue.put_nowait(message)


class Hub:
    """The process's pub/sub connection and the clients listening on it."""

    def __init__(self, url: str, namespace: str | None = None) -> None:
        """Listen on the Redis at ``url``, on the channels of ``namespace`` (default:
        Settings.channel_namespace, as NotificationService publishes)."""
        namespace = get_settings().channel_namespace if namespace is None else namespace
        self._namespace = namespace
        self._broadcast = keys.broadcast_channel(namespace)
        self._ended = keys.sessions_ended_channel(namespace)
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
        self._connected = False
        self.dropped_total = 0
        self.unreadable_total = 0

    @property
    def healthy(self) -> bool:
        """True while the reader runs on a working connection."""
        return self._connected and self._reader is not None and not self._reader.done()

    async def start(self) -> None:
        """Subscribe to site-wide events and ended sessions, and start reading."""
        await self._pubsub.subscribe(self._broadcast, self._ended)
        self._connected = True
        self._reader = asyncio.create_task(self._read(), name="gateway-pubsub-reader")

    async def close(self) -> None:
        """Stop reading and close the connection."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]
        await self._redis.aclose()

    async def add(self, client: Client, max_per_user: int) -> bool:
        """Start delivering the client's user channel (and broadcasts) to it; False (and
        nothing registered) when its user has ``max_per_user`` sockets on this process
        already. The count and the registration have no await between them, so sockets
        of one user signing in at once cannot all pass the check."""
        channel = keys.user_channel(self._namespace, client.user_id)
        listeners = self._listeners.setdefault(channel, set())
        if len(listeners) >= max_per_user:
            return False
        listeners.add(client)
        self._clients.add(client)
        if len(listeners) == 1:
            try:
                await self._pubsub.subscribe(channel)
            except BaseException:
                await self.remove(client)
                raise
        return True

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
        """Clients, subscribed user channels, messages dropped for slow clients, and
        messages the hub could not read (skipped)."""
        live_drops = sum(client.dropped for client in self._clients)
        return {
            "clients": len(self._clients),
            "user_channels": len(self._listeners),
            "dropped": self.dropped_total + live_drops,
            "unreadable": self.unreadable_total,
        }

    async def _read(self) -> None:
        while True:
            try:
                found = message_of(await self._pubsub.get_message(timeout=1.0))
            except (redis.ConnectionError, redis.TimeoutError, OSError) as exc:
                # The next read reconnects and re-subscribes every channel.
                if self._connected:
                    log.warning("gateway pub/sub connection lost (%s); reconnecting", exc)
                self._connected = False
                await asyncio.sleep(RECONNECT_WAIT_S)
                continue
            except UnicodeDecodeError as exc:
                # Not text (no notification is): skip it, keep delivering the rest.
                self._connected = True
                self.unreadable_total += 1
                log_unreadable(exc)
                continue
            self._connected = True
            if found is not None:
                self._handle(*found)

    def _handle(self, channel: str, data: str) -> None:
        if channel == self._ended:
            for client in [c for c in self._clients if c.session_fingerprint == data]:
                client.ended.set()
            return
        targets = self._clients if channel == self._broadcast else self._listeners.get(channel, ())
        for client in targets:
            client.offer(data)
