"""The Celery application: ``celery -A csgoflip_jobs worker -Q payment,notification,email``."""

from __future__ import annotations

import logging
from typing import Any

from celery import Celery
from celery.signals import worker_init

from .errors import ConfigError, UnsafeBrokerError
from .redis_connection import broker_client
from .settings import get_settings
from .worker_steps import JobKeeper, check_eviction_policy

log = logging.getLogger(__name__)


def _settings_or_exit() -> None:
    # A bad environment stops start-up with one line naming the variable.
    try:
        get_settings()
    except ConfigError as exc:
        raise SystemExit(f"csgoflip-jobs: configuration error: {exc}") from None


_settings_or_exit()

app = Celery("csgoflip_jobs", task_cls="csgoflip_jobs.job_task:JobTask")
app.config_from_object("celeryconfig")
app.steps["consumer"].add(JobKeeper)


def _refuse_evicting_broker(**_: Any) -> None:
    try:
        check_eviction_policy(broker_client())
    except UnsafeBrokerError as exc:
        raise SystemExit(f"csgoflip-jobs: refusing to start: {exc}") from None


worker_init.connect(_refuse_evicting_broker, weak=False)
