"""``SessionService``: 7-day sessions in Redis, validated in one round trip.

``session:<id>`` holds a JSON document (userId, createdAt, expiresAt, metadata,
lastActivity; times in Unix milliseconds) and ``user:<id>:sessions`` the user's
session ids. Invariants: an id carries 256 random bits; a session lives ``ttl_s``
after its last validation (each validation refreshes its TTL with one GETEX);
lastActivity and expiresAt are rewritten at most once per ``touch_interval_s``,
and each such touch makes the user's set outlive every session in it; the set
loses the ids of expired sessions when sessions are created or listed (and
hourly, by beat); corrupt data is an invalid session, never an exception. Ending a
session (one, or all of a user's) announces its :func:`fingerprint` on
``ended_channel`` in the same script, so the live sockets it opened close; a ticket
(:meth:`SessionOps.issue_ticket`) stands for a live session once, for seconds, where a
session id would otherwise end up in a URL or a log.

:class:`SessionService` is the sync API, :class:`AsyncSessionService` the asyncio
one (``csgoflip_jobs.aio.SessionService``); both run the steps of :class:`SessionOps`.
"""

from __future__ import annotations

import hashlib
import json
import secrets
import time
from dataclasses import dataclass
from functools import cache
from typing import Any

import redis
import redis.asyncio as aioredis

from csgoflip_jobs import keys
from csgoflip_jobs.helpers import scripts as lua_scripts
from csgoflip_jobs.helpers.arguments import json_within, require_key, whole_number
from csgoflip_jobs.helpers.connection import SCAN_BATCH, as_text
from csgoflip_jobs.helpers.redis_calls import (
    AsyncRunner,
    C,
    Command,
    RedisOps,
    ScriptCall,
    Steps,
    SyncRunner,
    operation,
)
from csgoflip_jobs.settings import get_settings

SESSION_TTL_S = 7 * 24 * 3600
"""A session lives 7 days after its last validation."""

SESSION_TOUCH_INTERVAL_S = 60
"""Longest a session's stored lastActivity may lag behind its last validation."""

SESSION_ID_BYTES = 32
"""Random bytes in a session id (256 bits, from ``secrets``)."""

TICKET_MAX_CHARS = 128
"""Longest ticket looked up (a longer one is none of ours)."""

TICKET_TTL_S = 30
"""A session ticket stands for its session this long, once."""

MAX_TICKET_TTL_S = 3600
"""Longest life a ticket may be given."""


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


class SessionOps(RedisOps[C]):
    """The steps of every session call, shared by the sync and asyncio services; on the
    queue Redis (sessions must never be evicted)."""

    def __init__(
        self,
        client: C | None = None,
        ttl_s: int = SESSION_TTL_S,
        touch_interval_s: int = SESSION_TOUCH_INTERVAL_S,
        namespace: str | None = None,
    ) -> None:
        super().__init__(client)
        self.ttl_s = whole_number("ttl_s", ttl_s)
        self.touch_interval_s = whole_number("touch_interval_s", touch_interval_s, minimum=0)
        settings = get_settings()
        namespace = settings.channel_namespace if namespace is None else namespace
        self.ended_channel = keys.sessions_ended_channel(namespace)
        self.metadata_max_bytes = settings.session_metadata_max_bytes
        """Where ending a session is announced (:func:`fingerprint` of its id)."""

    @operation
    def create(self, user_id: int | str, metadata: dict[str, Any] | None = None) -> Steps[Session]:
        """Start a session for ``user_id``; the id has 256 random bits."""
        user = _user_id(user_id)
        if metadata is not None and not isinstance(metadata, dict):
            raise ValueError(f"metadata must be a dict, not {metadata!r}")
        json_within(
            "session metadata",
            metadata or {},
            self.metadata_max_bytes,
            "SESSION_METADATA_MAX_BYTES",
        )
        session_id = secrets.token_urlsafe(SESSION_ID_BYTES)
        seconds, micros = yield Command("TIME")  # server time, as the touch script uses
        now = int(seconds) * 1000 + int(micros) // 1000
        # expiresAt and lastActivity come last: the touch script rewrites just that tail.
        document = {
            "userId": user,
            "createdAt": now,
            "metadata": metadata or {},
            "expiresAt": now + self.ttl_s * 1000,
            "lastActivity": now,
        }
        raw = json.dumps(document)
        yield ScriptCall(
            lua_scripts.SESSION_CREATE,
            [keys.session_key(session_id), keys.user_sessions_key(user)],
            [raw, self.ttl_s, session_id, keys.session_key(""), self.ttl_s + self.touch_interval_s],
        )
        return Session.from_json(session_id, raw)

    @operation
    def validate(self, session_id: str) -> Steps[Session | None]:
        """The session, its life renewed for ``ttl_s``; None when it is invalid."""
        if not isinstance(session_id, str) or not session_id:
            return None
        key = keys.session_key(session_id)
        raw = yield Command("GETEX", key, "EX", self.ttl_s)
        if raw is None:
            return None
        now = int(time.time() * 1000)
        try:
            session = Session.from_json(session_id, raw)
        except (ValueError, KeyError, TypeError):
            session = None
        if session is not None and now - session.last_activity < self.touch_interval_s * 1000:
            return _renewed(session, now, self.ttl_s)
        # Due for a touch (or not readable as a session): the script decides atomically.
        prefix, suffix = _user_set_affixes()
        touched = yield ScriptCall(
            lua_scripts.SESSION_VALIDATE,
            [key],
            [self.ttl_s, prefix, suffix, self.ttl_s + self.touch_interval_s],
        )
        return None if touched is None else Session.from_json(session_id, touched)

    @operation
    def invalidate(self, session_id: str) -> Steps[bool]:
        """End one session; False when it did not exist."""
        require_key("session_id", session_id)
        prefix, suffix = _user_set_affixes()
        ended = yield ScriptCall(
            lua_scripts.SESSION_INVALIDATE,
            [keys.session_key(session_id)],
            [session_id, prefix, suffix, self.ended_channel],
        )
        return bool(ended)

    @operation
    def invalidate_all_user_sessions(self, user_id: int | str) -> Steps[int]:
        """End every session of a user at once; returns how many ids were in the set."""
        ended = yield ScriptCall(
            lua_scripts.SESSION_INVALIDATE_ALL,
            [keys.user_sessions_key(_user_id(user_id))],
            [keys.session_key(""), self.ended_channel],
        )
        return int(ended)

    @operation
    def issue_ticket(self, session_id: str, ttl_s: int = TICKET_TTL_S) -> Steps[str | None]:
        """A single-use ticket standing for a live session for ``ttl_s`` (a client passes
        it where a session id would end up in a URL or a log); None when the session is
        not live."""
        require_key("session_id", session_id)
        ttl_s = whole_number("ttl_s", ttl_s, maximum=MAX_TICKET_TTL_S)
        if not (yield Command("EXISTS", keys.session_key(session_id))):
            return None
        ticket = secrets.token_urlsafe(SESSION_ID_BYTES)
        yield Command("SET", keys.session_ticket_key(ticket), session_id, "EX", ttl_s)
        return ticket

    @operation
    def redeem_ticket(self, ticket: str) -> Steps[Session | None]:
        """The live session a ticket stands for, once (the ticket is gone after this
        call); None for an unknown, used or expired ticket."""
        if not isinstance(ticket, str) or not ticket or len(ticket) > TICKET_MAX_CHARS:
            return None
        session_id = yield Command("GETDEL", keys.session_ticket_key(ticket))
        if session_id is None:
            return None
        return (yield from SessionOps.validate.build(self, as_text(session_id)))

    @operation
    def get_user_sessions(self, user_id: int | str) -> Steps[set[str]]:
        """Ids of the user's live sessions (expired ones are pruned on the way)."""
        return (yield from self._prune_set(keys.user_sessions_key(_user_id(user_id))))[1]

    @operation
    def prune_user_sessions(self, user_id: int | str) -> Steps[int]:
        """Remove ids of expired sessions from the user's set; returns how many."""
        return (yield from self._prune_set(keys.user_sessions_key(_user_id(user_id))))[0]

    @operation
    def prune_all_user_sessions(self) -> Steps[int]:
        """Prune every user's session set (SCAN, never KEYS); returns ids removed."""
        removed, cursor = 0, b"0"
        while True:
            cursor, found = yield Command(
                "SCAN", cursor, "MATCH", keys.user_sessions_key("*"), "COUNT", SCAN_BATCH
            )
            for key in found:
                removed += (yield from self._prune_set(key))[0]
            if int(cursor) == 0:
                return removed

    def _prune_set(self, user_set_key: str | bytes) -> Steps[tuple[int, set[str]]]:
        """Drop the ids of expired sessions from one user's set; (how many, live ids)."""
        removed, *live = yield ScriptCall(
            lua_scripts.SESSION_PRUNE, [user_set_key], [keys.session_key("")]
        )
        return int(removed), {as_text(m) for m in live}


class SessionService(SessionOps[redis.Redis], SyncRunner):
    """Creates, validates and invalidates sessions."""


class AsyncSessionService(SessionOps[aioredis.Redis], AsyncRunner):
    """:class:`SessionService` for asyncio: the same calls, awaited."""


def fingerprint(session_id: str) -> str:
    """What the end of a session is announced as on ``ended_channel`` (its id's SHA-1,
    as the scripts compute it): listeners match their sockets without the id."""
    return hashlib.sha1(session_id.encode(), usedforsecurity=False).hexdigest()


def _renewed(session: Session, now: int, ttl_s: int) -> Session:
    """The session as GETEX left it: alive for ``ttl_s`` from ``now``."""
    return Session(
        session.id,
        session.user_id,
        session.created_at,
        now + ttl_s * 1000,
        session.last_activity,
        session.metadata,
    )


@cache
def _user_set_affixes() -> tuple[str, str]:
    """``user:`` and ``:sessions``: the user-set key around an id, for the scripts."""
    prefix, suffix = keys.user_sessions_key("\0").split("\0")
    return prefix, suffix


def _user_id(user_id: object) -> int | str:
    if isinstance(user_id, bool) or not isinstance(user_id, int | str) or user_id in ("", 0):
        raise ValueError(f"user_id must be a non-empty id, not {user_id!r}")
    return user_id
