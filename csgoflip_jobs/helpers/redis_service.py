"""``RedisService``: typed Redis helpers for the web app, in snake_case.

Values given to ``set`` are stored as JSON and ``get`` returns them decoded; list,
set and hash helpers take and return strings.

Pub/sub: every subscription of a service shares ONE Redis connection, read by one
background reader (a thread for :class:`RedisService`, a task for
:class:`AsyncRedisService`) that calls each channel's handlers with
``(channel, message)``. redis-py re-subscribes after a reconnect, so
subscriptions survive a Redis restart.
"""

from __future__ import annotations

import builtins
import json
import threading
from typing import Any

import redis
import redis.asyncio as aioredis

from csgoflip_jobs.helpers.arguments import require_callable, require_key, require_ttl
from csgoflip_jobs.helpers.connection import as_text
from csgoflip_jobs.helpers.redis_calls import (
    AsyncRunner,
    C,
    Command,
    RedisOps,
    Steps,
    SyncRunner,
    one,
    operation,
)
from csgoflip_jobs.helpers.subscriptions import (
    AsyncSubscriber,
    MessageHandler,
    Subscriber,
    Subscription,
)


def _key(key: str) -> str:
    return require_key("key", key)


class RedisServiceOps(RedisOps[C]):
    """The steps of the plain helpers, shared by the sync and asyncio services."""

    @operation
    def get(self, key: str) -> Steps[Any]:
        """The JSON value stored at ``key``, or None."""
        return (yield from one(Command("GET", _key(key)), _json_or_none))

    @operation
    def set(self, key: str, value: Any, ttl: int | None = None) -> Steps[None]:
        """Store ``value`` as JSON, expiring after ``ttl`` seconds when given."""
        seconds = require_ttl("ttl", ttl)
        expiry = () if seconds is None else ("EX", seconds)
        yield Command("SET", _key(key), json.dumps(value), *expiry)

    @operation
    def delete(self, *keys: str) -> Steps[int]:
        """Delete keys; returns how many existed."""
        return (yield from one(Command("DEL", *[_key(k) for k in keys]), int))

    @operation
    def exists(self, key: str) -> Steps[bool]:
        """True when the key exists."""
        return (yield from one(Command("EXISTS", _key(key)), bool))

    @operation
    def lpush(self, key: str, *values: str) -> Steps[int]:
        """Push values onto the head of a list; returns its new length."""
        return (yield from one(Command("LPUSH", _key(key), *values), int))

    @operation
    def lrange(self, key: str, start: int = 0, stop: int = -1) -> Steps[list[str]]:
        """Elements ``start``..``stop`` (inclusive) of a list."""
        return (yield from one(Command("LRANGE", _key(key), start, stop), _texts))

    @operation
    def ltrim(self, key: str, start: int, stop: int) -> Steps[None]:
        """Keep only elements ``start``..``stop`` of a list."""
        yield Command("LTRIM", _key(key), start, stop)

    @operation
    def sadd(self, key: str, *members: str) -> Steps[int]:
        """Add members to a set; returns how many were new."""
        return (yield from one(Command("SADD", _key(key), *members), int))

    @operation
    def srem(self, key: str, *members: str) -> Steps[int]:
        """Remove members from a set; returns how many were there."""
        return (yield from one(Command("SREM", _key(key), *members), int))

    @operation
    def smembers(self, key: str) -> Steps[builtins.set[str]]:
        """All members of a set."""
        return (yield from one(Command("SMEMBERS", _key(key)), lambda m: set(_texts(m))))

    @operation
    def hset(self, key: str, field: str, value: str) -> Steps[int]:
        """Set one hash field; returns 1 when the field is new."""
        command = Command("HSET", _key(key), require_key("field", field), value)
        return (yield from one(command, int))

    @operation
    def hget(self, key: str, field: str) -> Steps[str | None]:
        """One hash field, or None."""
        command = Command("HGET", _key(key), require_key("field", field))
        return (yield from one(command, lambda v: None if v is None else as_text(v)))

    @operation
    def hgetall(self, key: str) -> Steps[dict[str, str]]:
        """All fields of a hash."""
        found = yield Command("HGETALL", _key(key))
        return {as_text(field): as_text(value) for field, value in dict(found).items()}

    @operation
    def incr(self, key: str, amount: int = 1) -> Steps[int]:
        """Add ``amount`` to a counter; returns the new value."""
        return (yield from one(Command("INCRBY", _key(key), amount), int))

    @operation
    def decr(self, key: str, amount: int = 1) -> Steps[int]:
        """Subtract ``amount`` from a counter; returns the new value."""
        return (yield from one(Command("DECRBY", _key(key), amount), int))

    @operation
    def expire(self, key: str, seconds: int) -> Steps[bool]:
        """Expire the key after ``seconds``; False when it does not exist."""
        ttl = require_ttl("seconds", seconds) or 0
        return (yield from one(Command("EXPIRE", _key(key), ttl), bool))

    @operation
    def ttl(self, key: str) -> Steps[int]:
        """Seconds left; -1 without expiry, -2 when the key does not exist."""
        return (yield from one(Command("TTL", _key(key)), int))

    @operation
    def publish(self, channel: str, message: Any) -> Steps[int]:
        """Publish (strings as they are, anything else as JSON); returns receivers."""
        text = message if isinstance(message, str) else json.dumps(message)
        command = Command("PUBLISH", require_key("channel", channel), text)
        return (yield from one(command, int))


class RedisService(RedisServiceOps[redis.Redis], SyncRunner):
    """Thin, typed helpers over the queue Redis (strings in, strings out)."""

    def __init__(self, client: redis.Redis | None = None) -> None:
        super().__init__(client)
        self._subscriber: Subscriber | None = None
        self._subscriber_lock = threading.Lock()

    def subscribe(self, channel: str, handler: MessageHandler) -> Subscription:
        """Call ``handler(channel, message)`` for each message; all share one connection."""
        require_key("channel", channel)
        require_callable("handler", handler)
        with self._subscriber_lock:
            if self._subscriber is None:
                self._subscriber = Subscriber(self.client)
            return self._subscriber.add(channel, handler)

    def close(self) -> None:
        """Stop the subscriber thread and close the connection it held."""
        with self._subscriber_lock:
            if self._subscriber is not None:
                self._subscriber.close()
                self._subscriber = None


class AsyncRedisService(RedisServiceOps[aioredis.Redis], AsyncRunner):
    """:class:`RedisService` for asyncio; handlers may be coroutine functions."""

    def __init__(self, client: aioredis.Redis | None = None) -> None:
        super().__init__(client)
        self._subscriber: AsyncSubscriber | None = None

    async def subscribe(self, channel: str, handler: MessageHandler) -> Subscription:
        """Call (or await) ``handler(channel, message)`` for each message; all share one
        connection, read by one task of the running loop."""
        require_key("channel", channel)
        require_callable("handler", handler)
        if self._subscriber is None:
            self._subscriber = AsyncSubscriber(self.client)
        return await self._subscriber.add(channel, handler)

    async def close(self) -> None:
        """Stop the reader task and close the connection it held."""
        if self._subscriber is not None:
            await self._subscriber.close()
            self._subscriber = None


def _json_or_none(raw: Any) -> Any:
    return None if raw is None else json.loads(raw)


def _texts(items: Any) -> list[str]:
    return [as_text(item) for item in items]
