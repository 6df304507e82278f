"""SessionService: strong ids, one-round-trip validate, pruning, corrupt data is invalid."""

from __future__ import annotations

import json
import time

import pytest
import redis

from csgoflip_jobs import SessionService
from csgoflip_jobs.helpers.sessions import SESSION_TTL_S
from csgoflip_jobs.keys import session_key, user_sessions_key


def test_create_stores_the_original_document(redis_client: redis.Redis) -> None:
    sessions = SessionService(redis_client)
    session = sessions.create(42, {"ip": "10.0.0.1"})
    stored = json.loads(redis_client.get(session_key(session.id)) or "{}")
    assert set(stored) == {"userId", "createdAt", "expiresAt", "metadata", "lastActivity"}
    assert stored["userId"] == 42 and stored["metadata"] == {"ip": "10.0.0.1"}
    assert stored["expiresAt"] - stored["createdAt"] == SESSION_TTL_S * 1000
    assert SESSION_TTL_S - 5 <= redis_client.ttl(session_key(session.id)) <= SESSION_TTL_S
    assert redis_client.smembers(user_sessions_key(42)) == {session.id.encode()}


def test_ids_carry_at_least_128_random_bits(redis_client: redis.Redis) -> None:
    sessions = SessionService(redis_client)
    ids = {sessions.create(1).id for _ in range(200)}
    assert len(ids) == 200
    # token_urlsafe: 6 bits per character; 22 characters are 132 bits.
    assert min(len(i) for i in ids) >= 22


def test_validate_renews_the_session_in_one_round_trip(
    redis_client: redis.Redis, round_trips: list[int]
) -> None:
    sessions = SessionService(redis_client)
    session = sessions.create(7, {"tags": [], "nested": {"empty": []}})
    redis_client.expire(session_key(session.id), 100)
    before = round_trips[0]
    validated = sessions.validate(session.id)
    assert round_trips[0] - before == 1  # one GETEX: within the touch interval
    assert validated is not None and validated.user_id == 7
    assert redis_client.ttl(session_key(session.id)) > SESSION_TTL_S - 5
    assert abs(validated.expires_at - (time.time() * 1000 + SESSION_TTL_S * 1000)) < 2000
    assert validated.last_activity == session.last_activity  # not rewritten yet
    assert validated.metadata == {"tags": [], "nested": {"empty": []}}


def test_validate_touches_last_activity_once_per_interval(redis_client: redis.Redis) -> None:
    sessions = SessionService(redis_client, ttl_s=100, touch_interval_s=1)
    session = sessions.create(8, {"tags": [], "nested": {"empty": []}})
    time.sleep(1.05)
    touched = sessions.validate(session.id)
    assert touched is not None and touched.last_activity > session.last_activity
    stored = json.loads(redis_client.get(session_key(session.id)))  # type: ignore[arg-type]
    assert stored["lastActivity"] == touched.last_activity
    assert touched.expires_at == touched.last_activity + 100 * 1000
    # The rest of the document is untouched by the rewrite (empty lists stay lists).
    assert stored["metadata"] == {"tags": [], "nested": {"empty": []}}
    assert sessions.validate(session.id).last_activity == touched.last_activity  # type: ignore[union-attr]


@pytest.mark.parametrize("raw", ["not json", "[]", '{"noUser": 1}', "{"])
def test_corrupt_session_data_is_an_invalid_session(redis_client: redis.Redis, raw: str) -> None:
    redis_client.set(session_key("broken"), raw)
    assert SessionService(redis_client).validate("broken") is None
    assert not redis_client.exists(session_key("broken"))


def test_unknown_or_malformed_ids_are_invalid(redis_client: redis.Redis) -> None:
    sessions = SessionService(redis_client)
    assert sessions.validate("no-such-session") is None
    assert sessions.validate("") is None
    assert sessions.validate(None) is None  # type: ignore[arg-type]


def test_invalidate_removes_the_session_and_its_id(redis_client: redis.Redis) -> None:
    sessions = SessionService(redis_client)
    keep, drop = sessions.create(5), sessions.create(5)
    assert sessions.invalidate(drop.id) is True
    assert sessions.invalidate(drop.id) is False
    assert sessions.validate(drop.id) is None
    assert sessions.get_user_sessions(5) == {keep.id}


def test_invalidate_all_user_sessions(redis_client: redis.Redis) -> None:
    sessions = SessionService(redis_client)
    mine = [sessions.create(9) for _ in range(5)]
    other = sessions.create(10)
    assert sessions.invalidate_all_user_sessions(9) == 5
    assert all(sessions.validate(s.id) is None for s in mine)
    assert not redis_client.exists(user_sessions_key(9))
    assert sessions.validate(other.id) is not None


def test_ids_of_expired_sessions_are_pruned(redis_client: redis.Redis) -> None:
    short, long = SessionService(redis_client, ttl_s=1), SessionService(redis_client, ttl_s=100)
    old = short.create(3)
    live = long.create(3)
    time.sleep(1.2)
    assert redis_client.sismember(user_sessions_key(3), old.id)  # the original kept it forever
    assert long.get_user_sessions(3) == {live.id}
    assert not redis_client.sismember(user_sessions_key(3), old.id)
    stale = short.create(3)
    time.sleep(1.2)
    newest = long.create(3)  # creating prunes too
    assert redis_client.smembers(user_sessions_key(3)) == {live.id.encode(), newest.id.encode()}
    assert stale.id not in long.get_user_sessions(3)
    assert long.prune_user_sessions(3) == 0


def test_the_user_set_outlives_every_refreshed_session(redis_client: redis.Redis) -> None:
    sessions = SessionService(redis_client, ttl_s=100, touch_interval_s=1)
    session = sessions.create(11)
    # Created: the set lives a touch interval longer than the session.
    assert redis_client.ttl(user_sessions_key(11)) >= redis_client.ttl(session_key(session.id))
    redis_client.expire(user_sessions_key(11), 5)
    time.sleep(1.05)
    sessions.validate(session.id)  # a touch: the set is given the longer life again
    assert redis_client.ttl(user_sessions_key(11)) >= 100


@pytest.mark.parametrize("user_id", [0, "", None, True, 1.5])
def test_bad_user_ids_raise_value_error(redis_client: redis.Redis, user_id: object) -> None:
    with pytest.raises(ValueError, match="user_id"):
        SessionService(redis_client).create(user_id)  # type: ignore[arg-type]
