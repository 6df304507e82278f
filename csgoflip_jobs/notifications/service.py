"""Live notifications: published on pub/sub and kept in a capped list per user.

Pub/sub is at-most-once (a client that is not connected misses the message),
so every notification is also LPUSHed onto a list trimmed to the newest
``NOTIFICATIONS_KEEP``; a client that reconnects reads what it missed there.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass
from typing import Any

import redis

from csgoflip_jobs import keys
from csgoflip_jobs.engine.errors import UnrecoverableError
from csgoflip_jobs.helpers.arguments import whole_number
from csgoflip_jobs.helpers.connection import broker_client
from csgoflip_jobs.settings import get_settings

NOTIFICATIONS_KEEP = 50
"""Newest notifications kept per user, for clients that reconnect."""

NOTIFICATION_TYPE_MAX_CHARS = 64
"""Longest notification type."""


@dataclass(frozen=True)
class Notification:
    """One event for a user (or for everyone when ``user_id`` is None)."""

    id: str
    user_id: int | None
    type: str
    payload: dict[str, Any]
    created_at: float

    def to_json(self) -> str:
        """The JSON sent to browsers."""
        return json.dumps(asdict(self))


class NotificationService:
    """Sends notifications and reads a user's recent ones."""

    def __init__(
        self,
        client: redis.Redis | None = None,
        keep: int = NOTIFICATIONS_KEEP,
        namespace: str | None = None,
    ) -> None:
        self._client = client
        self._keep = whole_number("keep", keep)
        self._namespace = get_settings().channel_namespace if namespace is None else namespace

    def channel(self, user_id: int | None) -> str:
        """The pub/sub channel the user's notifications go to (the broadcast one for
        None): what a subscriber listens on (it carries Settings.channel_namespace)."""
        return _destinations(self._namespace, user_id)[0]

    @property
    def client(self) -> redis.Redis:
        """The queue Redis client."""
        return self._client or broker_client()

    def send(self, user_id: int | None, type: str, payload: dict[str, Any]) -> Notification:
        """Publish to the user's channel (or the broadcast one) and keep it; one round trip."""
        notification = _build(user_id, type, payload)
        channel, recent = _destinations(self._namespace, user_id)
        message = notification.to_json()
        with self.client.pipeline(transaction=True) as pipe:
            pipe.lpush(recent, message)
            pipe.ltrim(recent, 0, self._keep - 1)
            pipe.publish(channel, message)
            pipe.execute()
        return notification

    def recent(self, user_id: int | None, count: int = NOTIFICATIONS_KEEP) -> list[Notification]:
        """The user's newest notifications, newest first."""
        _channel, recent = _destinations(self._namespace, user_id)
        items = self.client.lrange(recent, 0, count - 1)
        return [Notification(**json.loads(item)) for item in items]


def _destinations(namespace: str, user_id: int | None) -> tuple[str, str]:
    if user_id is None:
        return keys.broadcast_channel(namespace), keys.BROADCAST_RECENT_KEY
    return keys.user_channel(namespace, user_id), keys.user_recent_key(user_id)


def _build(user_id: object, type: object, payload: object) -> Notification:
    # Bad job data can never succeed on a later try: fail it at once.
    if user_id is not None and (
        not isinstance(user_id, int) or isinstance(user_id, bool) or user_id < 1
    ):
        raise UnrecoverableError(f"user_id must be a positive integer or None, not {user_id!r}")
    if not isinstance(type, str) or not type:
        raise UnrecoverableError(f"type must be a non-empty string, not {type!r}")
    if not isinstance(payload, dict):
        raise UnrecoverableError(f"payload must be a JSON object, not {payload!r}")
    try:
        # Browsers read it: NaN or Infinity would make the whole message unreadable.
        size = len(json.dumps(payload, allow_nan=False).encode())
    except (TypeError, ValueError) as exc:
        raise UnrecoverableError(f"payload must be JSON without NaN or Infinity: {exc}") from None
    limit = get_settings().notification_max_bytes
    if size > limit or len(type) > NOTIFICATION_TYPE_MAX_CHARS:
        raise UnrecoverableError(
            f"a notification's payload is at most {limit} bytes as JSON "
            f"(NOTIFICATION_MAX_BYTES) and its type {NOTIFICATION_TYPE_MAX_CHARS} characters; "
            f"this one's payload is {size} bytes"
        )
    return Notification(uuid.uuid4().hex, user_id, type, payload, time.time())
