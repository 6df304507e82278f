"""Periodic upkeep run by beat (see beat_schedule.py); routed to the notification queue."""

from __future__ import annotations

from csgoflip_jobs import RedisMonitor, SessionService, app
from csgoflip_jobs.celery_app import job_counts_by_queue


@app.task(name="prune-session-sets")
def prune_session_sets() -> int:
    """Remove ids of expired sessions from every user's session set."""
    return SessionService().prune_all_user_sessions()


@app.task(name="snapshot-redis-stats")
def snapshot_redis_stats() -> dict[str, object]:
    """Store a RedisMonitor snapshot for trends."""
    return RedisMonitor(queue_counts=job_counts_by_queue).snapshot().as_dict()
