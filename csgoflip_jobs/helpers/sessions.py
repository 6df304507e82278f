"""``SessionService``: 7-day sessions in Redis, validated in one round trip.

``session:<id>`` holds a JSON document (userId, createdAt, expiresAt, metadata,
lastActivity; times in Unix milliseconds) and ``user:<id>:sessions`` the user's
session ids. Invariants: an id carries 256 random bits; a session lives
``ttl_s`` after its last validation, which refreshes the TTL and lastActivity in
one atomic script; the user's set outlives every session in it and loses the ids
of expired ones when sessions are created or listed (and hourly, by beat);
corrupt data is an invalid session, never an exception.
"""

from __future__ import annotations

import json
import secrets
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis

from csgoflip_jobs import keys
from csgoflip_jobs.helpers import scripts as lua_scripts
from csgoflip_jobs.helpers.arguments import require_key, whole_number
from csgoflip_jobs.helpers.connection import SCAN_BATCH, as_text, broker_client

SESSION_TTL_S = 7 * 24 * 3600
"""A session lives 7 days after its last validation."""

SESSION_ID_BYTES = 32
"""Random bytes in a session id (256 bits, from ``secrets``)."""


@dataclass(frozen=True)
class Session:
    """A valid session; times are Unix milliseconds."""

    id: str
    user_id: int | str
    created_at: int
    expires_at: int
    last_activity: int
    metadata: dict[str, Any]

    @classmethod
    def from_json(cls, session_id: str, raw: str | bytes) -> Session:
        """Build from the stored document."""
        data = json.loads(raw)
        return cls(
            id=session_id,
            user_id=data["userId"],
            created_at=int(data["createdAt"]),
            expires_at=int(data["expiresAt"]),
            last_activity=int(data["lastActivity"]),
            metadata=data.get("metadata") or {},
        )


class SessionService:
    """Creates, validates and invalidates sessions."""

    def __init__(self, client: redis.Redis | None = None, ttl_s: int = SESSION_TTL_S) -> None:
        self._client = client
        self.ttl_s = whole_number("ttl_s", ttl_s)

    @property
    def client(self) -> redis.Redis:
        """The queue Redis (sessions must never be evicted)."""
        return self._client or broker_client()

    def create(self, user_id: int | str, metadata: dict[str, Any] | None = None) -> Session:
        """Start a session for ``user_id``; the id has 256 random bits."""
        user = _user_id(user_id)
        if metadata is not None and not isinstance(metadata, dict):
            raise ValueError(f"metadata must be a dict, not {metadata!r}")
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        seconds, micros = self.client.time()  # server time, as validate uses
        now = seconds * 1000 + micros // 1000
        # expiresAt and lastActivity come last: validate rewrites just that tail.
        document = {
            "userId": user,
            "createdAt": now,
            "metadata": metadata or {},
            "expiresAt": now + self.ttl_s * 1000,
            "lastActivity": now,
        }
        raw = json.dumps(document)
        lua_scripts.SESSION_CREATE(
            keys=[keys.session_key(session_id), keys.user_sessions_key(user)],
            args=[raw, self.ttl_s, session_id, keys.session_key("")],
            client=self.client,
        )
        return Session.from_json(session_id, raw)

    def validate(self, session_id: str) -> Session | None:
        """The session with its TTL and lastActivity refreshed, or None when invalid."""
        if not isinstance(session_id, str) or not session_id:
            return None
        prefix, suffix = _user_set_affixes()
        raw = lua_scripts.run_script(
            self.client,
            lua_scripts.SESSION_VALIDATE,
            [keys.session_key(session_id)],
            [self.ttl_s, prefix, suffix],
        )
        return None if raw is None else Session.from_json(session_id, raw)

    def invalidate(self, session_id: str) -> bool:
        """End one session; False when it did not exist."""
        require_key("session_id", session_id)
        prefix, suffix = _user_set_affixes()
        return bool(
            lua_scripts.SESSION_INVALIDATE(
                keys=[keys.session_key(session_id)],
                args=[session_id, prefix, suffix],
                client=self.client,
            )
        )

    def invalidate_all_user_sessions(self, user_id: int | str) -> int:
        """End every session of a user at once; returns how many ids were in the set."""
        return int(
            lua_scripts.SESSION_INVALIDATE_ALL(
                keys=[keys.user_sessions_key(_user_id(user_id))],
                args=[keys.session_key("")],
                client=self.client,
            )
        )

    def get_user_sessions(self, user_id: int | str) -> set[str]:
        """Ids of the user's live sessions (expired ones are pruned on the way)."""
        return self._prune(user_id)[1]

    def prune_user_sessions(self, user_id: int | str) -> int:
        """Remove ids of expired sessions from the user's set; returns how many."""
        return self._prune(user_id)[0]

    def prune_all_user_sessions(self) -> int:
        """Prune every user's session set (SCAN, never KEYS); returns ids removed."""
        pattern = keys.user_sessions_key("*")
        return sum(
            self._prune_set(key)[0]
            for key in self.client.scan_iter(match=pattern, count=SCAN_BATCH)
        )

    def _prune(self, user_id: int | str) -> tuple[int, set[str]]:
        return self._prune_set(keys.user_sessions_key(_user_id(user_id)))

    def _prune_set(self, user_set_key: str | bytes) -> tuple[int, set[str]]:
        """Drop the ids of expired sessions from one user's set; (how many, live ids)."""
        removed, *live = lua_scripts.SESSION_PRUNE(
            keys=[user_set_key], args=[keys.session_key("")], client=self.client
        )
        return int(removed), {as_text(m) for m in live}


@cache
def _user_set_affixes() -> tuple[str, str]:
    """``user:`` and ``:sessions``: the user-set key around an id, for the scripts."""
    prefix, suffix = keys.user_sessions_key("\0").split("\0")
    return prefix, suffix


def _user_id(user_id: object) -> int | str:
    if isinstance(user_id, bool) or not isinstance(user_id, int | str) or user_id in ("", 0):
        raise ValueError(f"user_id must be a non-empty id, not {user_id!r}")
    return user_id
