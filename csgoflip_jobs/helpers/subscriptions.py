"""Pub/sub for :mod:`csgoflip_jobs.helpers.redis_service`: one connection per service,
read by one background reader, fanning each message out to its channel's handlers.

:class:`Handlers` is the registry both readers share; :class:`Subscriber` reads in
a thread (sync API), :class:`AsyncSubscriber` in a task (asyncio API). A handler
that raises is logged; the others still get the message. A message that is not
UTF-8 text is logged and skipped; it never ends delivery of the rest.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis
import redis.asyncio as aioredis

from csgoflip_jobs.helpers.connection import as_text

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, str], Any]
"""Called with (channel, message) for each message on a subscribed channel (the
asyncio reader awaits what a coroutine function returns)."""

RECONNECT_WAIT_S = 0.5


@dataclass(frozen=True, eq=False)
class Subscription:
    """A handler on a channel; ``unsubscribe()`` (awaited on the asyncio API) removes it."""

    channel: str
    handler: MessageHandler
    subscriber: Subscriber | AsyncSubscriber

    def unsubscribe(self) -> Any:
        """Stop delivering to this handler (the channel is dropped when it has no handlers)."""
        return self.subscriber.remove(self)


class Handlers:
    """Which handlers listen on which channel."""

    def __init__(self) -> None:
        self._by_channel: dict[str, list[Subscription]] = {}

    def add(self, subscription: Subscription) -> bool:
        """Register; True when its channel is new (to be subscribed)."""
        listeners = self._by_channel.setdefault(subscription.channel, [])
        listeners.append(subscription)
        return len(listeners) == 1

    def remove(self, subscription: Subscription) -> bool:
        """Unregister; True when its channel has no handler left (to be unsubscribed)."""
        listeners = self._by_channel.get(subscription.channel, [])
        if subscription in listeners:
            listeners.remove(subscription)
        if listeners or subscription.channel not in self._by_channel:
            return False
        del self._by_channel[subscription.channel]
        return True

    def of(self, channel: str) -> list[Subscription]:
        """The handlers of ``channel`` now."""
        return list(self._by_channel.get(channel, []))

    @property
    def channels(self) -> set[str]:
        """Channels with at least one handler."""
        return set(self._by_channel)


def message_of(raw: dict[str, Any] | None) -> tuple[str, str] | None:
    """(channel, data) of a pub/sub message; None for anything else. Raises
    UnicodeDecodeError when either is not UTF-8 text (as a decoding client's read does)."""
    if raw and raw.get("type") == "message":
        return as_text(raw["channel"]), as_text(raw["data"])
    return None


def log_unreadable(exc: UnicodeDecodeError) -> None:
    """Log a message skipped for not being UTF-8 text: no platform message is binary,
    so one that is must not stop a reader."""
    log.warning("skipped a pub/sub message that is not UTF-8 text (%s)", exc)


class Subscriber:
    """One pub/sub connection and one reader thread for every subscription of a service."""

    def __init__(self, client: redis.Redis) -> None:
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self._handlers = Handlers()
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, name="redis-subscriber", daemon=True)

    def add(self, channel: str, handler: MessageHandler) -> Subscription:
        """Register a handler, subscribing the channel if it is new."""
        subscription = Subscription(channel, handler, self)
        with self._lock:
            if self._handlers.add(subscription):
                self._pubsub.subscribe(channel)
            if not self._thread.is_alive():
                self._thread.start()
        return subscription

    def remove(self, subscription: Subscription) -> None:
        """Unregister a handler, unsubscribing its channel when it was the last."""
        with self._lock:
            if self._handlers.remove(subscription):
                self._pubsub.unsubscribe(subscription.channel)

    @property
    def channels(self) -> set[str]:
        """Channels with at least one handler."""
        with self._lock:
            return self._handlers.channels

    def close(self) -> None:
        """Stop reading and close the connection."""
        self._closed.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        self._pubsub.close()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                found = message_of(self._pubsub.get_message(timeout=1.0))
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                # redis-py reconnects and re-subscribes on the next read.
                log.warning("pub/sub connection lost (%s); reconnecting", exc)
                self._closed.wait(RECONNECT_WAIT_S)
                continue
            except UnicodeDecodeError as exc:
                log_unreadable(exc)
                continue
            if found is not None:
                with self._lock:
                    listeners = self._handlers.of(found[0])
                for subscription in listeners:
                    try:
                        subscription.handler(*found)
                    except Exception:
                        log.exception("handler for %s failed", found[0])


class AsyncSubscriber:
    """:class:`Subscriber` for asyncio: one connection, one reader task of the loop."""

    def __init__(self, client: aioredis.Redis) -> None:
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)
        self._handlers = Handlers()
        self._reader: asyncio.Task[None] | None = None

    async def add(self, channel: str, handler: MessageHandler) -> Subscription:
        """Register a handler, subscribing the channel if it is new."""
        subscription = Subscription(channel, handler, self)
        if self._handlers.add(subscription):
            await self._pubsub.subscribe(channel)
        if self._reader is None:
            self._reader = asyncio.create_task(self._read(), name="redis-subscriber")
        return subscription

    async def remove(self, subscription: Subscription) -> None:
        """Unregister a handler, unsubscribing its channel when it was the last."""
        if self._handlers.remove(subscription):
            await self._pubsub.unsubscribe(subscription.channel)

    async def close(self) -> None:
        """Stop the reader and close the connection."""
        if self._reader is not None:
            self._reader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reader
        await self._pubsub.aclose()  # type: ignore[no-untyped-call]

    async def _read(self) -> None:
        while True:
            try:
                found = message_of(await self._pubsub.get_message(timeout=1.0))
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("pub/sub connection lost (%s); reconnecting", exc)
                await asyncio.sleep(RECONNECT_WAIT_S)
                continue
            except UnicodeDecodeError as exc:
                log_unreadable(exc)
                continue
            for subscription in self._handlers.of(found[0]) if found else ():
                try:
                    result = subscription.handler(*found)  # type: ignore[misc]
                    if inspect.isawaitable(result):
                        await result
                except Exception:
                    log.exception("handler for %s failed", found[0] if found else "?")
