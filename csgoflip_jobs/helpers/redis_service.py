"""``RedisService``: typed Redis helpers for the web app, in snake_case.

Values given to ``set`` are stored as JSON and ``get`` returns them decoded; list,
set and hash helpers take and return strings.

Pub/sub: every subscription of a process shares ONE Redis connection, read by
one background thread that calls each channel's handlers. redis-py
re-subscribes after a reconnect, so subscriptions survive a Redis restart.
"""

from __future__ import annotations

import builtins
import json
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from csgoflip_jobs.helpers.arguments import require_callable, require_key, require_ttl
from csgoflip_jobs.helpers.connection import as_text, make_client
from csgoflip_jobs.settings import get_settings

log = logging.getLogger(__name__)

MessageHandler = Callable[[str, str], None]
"""Called with (channel, message) for each message on a subscribed channel."""

RECONNECT_WAIT_S = 0.5


class RedisService:
    """Thin, typed helpers over one Redis client (strings in, strings out)."""

    def __init__(self, client: redis.Redis | None = None) -> None:
        self.client = client or make_client(get_settings().broker_url, decode_responses=True)
        self._subscriber: Subscriber | None = None
        self._subscriber_lock = threading.Lock()

    def get(self, key: str) -> Any:
        """The JSON value stored at ``key``, or None."""
        raw = self.client.get(require_key("key", key))
        return None if raw is None else json.loads(raw)

    def set(self, key: str, value: Any, ttl: int | None = None) -> None:
        """Store ``value`` as JSON, expiring after ``ttl`` seconds when given."""
        self.client.set(require_key("key", key), json.dumps(value), ex=require_ttl("ttl", ttl))

    def delete(self, *keys: str) -> int:
        """Delete keys; returns how many existed."""
        return int(self.client.delete(*[require_key("key", k) for k in keys]))

    def exists(self, key: str) -> bool:
        """True when the key exists."""
        return bool(self.client.exists(require_key("key", key)))

    def lpush(self, key: str, *values: str) -> int:
        """Push values onto the head of a list; returns its new length."""
        return int(self.client.lpush(require_key("key", key), *values))

    def lrange(self, key: str, start: int = 0, stop: int = -1) -> list[str]:
        """Elements ``start``..``stop`` (inclusive) of a list."""
        return [as_text(item) for item in self.client.lrange(require_key("key", key), start, stop)]

    def ltrim(self, key: str, start: int, stop: int) -> None:
        """Keep only elements ``start``..``stop`` of a list."""
        self.client.ltrim(require_key("key", key), start, stop)

    def sadd(self, key: str, *members: str) -> int:
        """Add members to a set; returns how many were new."""
        return int(self.client.sadd(require_key("key", key), *members))

    def srem(self, key: str, *members: str) -> int:
        """Remove members from a set; returns how many were there."""
        return int(self.client.srem(require_key("key", key), *members))

    def smembers(self, key: str) -> builtins.set[str]:
        """All members of a set."""
        return {as_text(member) for member in self.client.smembers(require_key("key", key))}

    def hset(self, key: str, field: str, value: str) -> int:
        """Set one hash field; returns 1 when the field is new."""
        return int(self.client.hset(require_key("key", key), require_key("field", field), value))

    def hget(self, key: str, field: str) -> str | None:
        """One hash field, or None."""
        value = self.client.hget(require_key("key", key), require_key("field", field))
        return None if value is None else as_text(value)

    def hgetall(self, key: str) -> dict[str, str]:
        """All fields of a hash."""
        items = self.client.hgetall(require_key("key", key)).items()
        return {as_text(field): as_text(value) for field, value in items}

    def incr(self, key: str, amount: int = 1) -> int:
        """Add ``amount`` to a counter; returns the new value."""
        return int(self.client.incrby(require_key("key", key), amount))

    def decr(self, key: str, amount: int = 1) -> int:
        """Subtract ``amount`` from a counter; returns the new value."""
        return int(self.client.decrby(require_key("key", key), amount))

    def expire(self, key: str, seconds: int) -> bool:
        """Expire the key after ``seconds``; False when it does not exist."""
        ttl = require_ttl("seconds", seconds)
        return bool(self.client.expire(require_key("key", key), ttl or 0))

    def ttl(self, key: str) -> int:
        """Seconds left; -1 without expiry, -2 when the key does not exist."""
        return int(self.client.ttl(require_key("key", key)))

    def publish(self, channel: str, message: Any) -> int:
        """Publish (strings as they are, anything else as JSON); returns receivers."""
        text = message if isinstance(message, str) else json.dumps(message)
        return int(self.client.publish(require_key("channel", channel), text))

    def subscribe(self, channel: str, handler: MessageHandler) -> Subscription:
        """Call ``handler(channel, message)`` for each message; all share one connection."""
        require_key("channel", channel)
        require_callable("handler", handler)
        with self._subscriber_lock:
            if self._subscriber is None:
                self._subscriber = Subscriber(self.client)
            return self._subscriber.add(channel, handler)

    def close(self) -> None:
        """Stop the subscriber thread and close connections."""
        with self._subscriber_lock:
            if self._subscriber is not None:
                self._subscriber.close()
                self._subscriber = None
        self.client.close()


@dataclass(frozen=True, eq=False)
class Subscription:
    """A handler on a channel; ``unsubscribe()`` removes it."""

    channel: str
    handler: MessageHandler
    subscriber: Subscriber

    def unsubscribe(self) -> None:
        """Stop delivering to this handler (the channel is dropped when it has no handlers)."""
        self.subscriber.remove(self)


class Subscriber:
    """One pub/sub connection and one reader thread for every subscription of a process."""

    def __init__(self, client: redis.Redis) -> None:
        self._pubsub = client.pubsub(ignore_subscribe_messages=True)  # type: ignore[no-untyped-call]
        self._handlers: dict[str, list[Subscription]] = {}
        self._lock = threading.Lock()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._read, name="redis-subscriber", daemon=True)
        self._thread_started = False

    def add(self, channel: str, handler: MessageHandler) -> Subscription:
        """Register a handler, subscribing the channel if it is new."""
        subscription = Subscription(channel, handler, self)
        with self._lock:
            if channel not in self._handlers:
                self._pubsub.subscribe(channel)
            self._handlers.setdefault(channel, []).append(subscription)
            if not self._thread_started:
                self._thread.start()
                self._thread_started = True
        return subscription

    def remove(self, subscription: Subscription) -> None:
        """Unregister a handler, unsubscribing its channel when it was the last."""
        with self._lock:
            handlers = self._handlers.get(subscription.channel, [])
            if subscription in handlers:
                handlers.remove(subscription)
            if not handlers and subscription.channel in self._handlers:
                del self._handlers[subscription.channel]
                self._pubsub.unsubscribe(subscription.channel)

    @property
    def channels(self) -> set[str]:
        """Channels with at least one handler."""
        with self._lock:
            return set(self._handlers)

    def close(self) -> None:
        """Stop reading and close the connection."""
        self._closed.set()
        if self._thread_started:
            self._thread.join(timeout=5)
        self._pubsub.close()

    def _read(self) -> None:
        while not self._closed.is_set():
            try:
                message = self._pubsub.get_message(timeout=1.0)
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                # redis-py reconnects and re-subscribes on the next read.
                log.warning("pub/sub connection lost (%s); reconnecting", exc)
                self._closed.wait(RECONNECT_WAIT_S)
                continue
            if message and message.get("type") == "message":
                self._dispatch(as_text(message["channel"]), as_text(message["data"]))

    def _dispatch(self, channel: str, data: str) -> None:
        with self._lock:
            handlers = list(self._handlers.get(channel, []))
        for subscription in handlers:
            try:
                subscription.handler(channel, data)
            except Exception:
                log.exception("handler for %s failed", channel)
