"""The ``beat_schedule`` dict: named periodic jobs, run by ``celery -A csgoflip_jobs beat``.

Empty until the operations work (session pruning, stuck-withdrawal sweep,
Redis stats snapshots) lands; celeryconfig imports it from here so schedules
live in configuration, not in decorators.
"""

from __future__ import annotations

from typing import Any

beat_schedule: dict[str, dict[str, Any]] = {}
