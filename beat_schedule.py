"""The ``beat_schedule`` dict: named periodic jobs, run by ``celery -A csgoflip_jobs beat``.

Schedules live here, in configuration, not in decorators. Each entry names a
task and its queue; times are seconds.
"""

from __future__ import annotations

from typing import Any

from csgoflip_jobs import keys

beat_schedule: dict[str, dict[str, Any]] = {
    "requeue-stuck-withdrawals": {
        "task": "requeue-stuck-withdrawals",
        "schedule": keys.STUCK_WITHDRAWAL_SWEEP_S,
        "kwargs": {"older_than_s": keys.STUCK_WITHDRAWAL_AFTER_S},
        "options": {"queue": "payment"},
    },
}
