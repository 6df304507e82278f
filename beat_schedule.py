"""The ``beat_schedule`` dict: named periodic jobs, run by ``celery -A csgoflip_jobs beat``.

Schedules live here, in configuration, not in decorators; times are seconds.
Beat runs with celery-redbeat (celeryconfig.py): the schedule and a lock live
in Redis, so of several beat processes only one fires at a time and no job
fires twice in a period.
"""

from __future__ import annotations

from typing import Any

from csgoflip_jobs.payments.service import STUCK_WITHDRAWAL_SWEEP_S
from csgoflip_jobs.payments.stuck import STUCK_WITHDRAWAL_AFTER_S
from csgoflip_jobs.settings import get_settings

SESSION_PRUNE_INTERVAL_S = 3600
"""How often beat prunes expired ids from every user's session set."""

beat_schedule: dict[str, dict[str, Any]] = {
    "requeue-stuck-withdrawals": {
        "task": "requeue-stuck-withdrawals",
        "schedule": STUCK_WITHDRAWAL_SWEEP_S,
        "kwargs": {"older_than_s": STUCK_WITHDRAWAL_AFTER_S},
        "options": {"queue": "payment"},
    },
    "prune-session-sets": {
        "task": "prune-session-sets",
        "schedule": SESSION_PRUNE_INTERVAL_S,
        "options": {"queue": "notification"},
    },
    "snapshot-redis-stats": {
        "task": "snapshot-redis-stats",
        "schedule": get_settings().stats_snapshot_interval_s,
        "options": {"queue": "notification"},
    },
}
