"""The Celery application: ``celery -A csgoflip_jobs worker -Q payment,notification,email``."""

from __future__ import annotations

import logging
import sys
from typing import Any

from celery import Celery
from celery.signals import worker_init

from csgoflip_jobs.engine.celery_ext.job_keeper import JobKeeper, check_eviction_policy
from csgoflip_jobs.engine.celery_ext.transport import use_for_redis_urls
from csgoflip_jobs.errors import ConfigError
from csgoflip_jobs.helpers.connection import broker_client
from csgoflip_jobs.helpers.errors import UnsafeBrokerError
from csgoflip_jobs.settings import get_settings

log = logging.getLogger(__name__)


def _settings_or_exit() -> None:
    # A bad environment stops start-up with one line naming the variable.
    try:
        get_settings()
    except ConfigError as exc:
        raise SystemExit(f"csgoflip-jobs: configuration error: {exc}") from None


_settings_or_exit()


def flower_auth_arguments() -> list[str]:
    """Flower's ``--basic-auth`` from FLOWER_USER / FLOWER_PASSWORD; refuse to serve the
    dashboard unprotected in production (it can revoke tasks and shut workers down)."""
    settings = get_settings()
    if settings.flower_user and settings.flower_password:
        return [f"--basic-auth={settings.flower_user}:{settings.flower_password}"]
    if settings.is_production:
        raise SystemExit(
            "csgoflip-jobs: refusing to start Flower without credentials in "
            "production: set FLOWER_USER and FLOWER_PASSWORD"
        )
    return []


def protect_flower_metrics() -> None:
    """Put Flower's auth check on its Prometheus ``/metrics`` page, which Flower serves
    to anyone (task names, worker names, queue sizes); scrapers send the same basic-auth
    credentials. Without credentials configured (development) it stays open."""
    from flower.views.monitor import Metrics
    from tornado.web import authenticated

    if not getattr(Metrics.get, "csgoflip_protected", False):
        protected = authenticated(Metrics.get)
        protected.csgoflip_protected = True  # type: ignore[attr-defined]
        Metrics.get = protected


def _guard_plain_flower() -> None:
    # `celery -A csgoflip_jobs flower` reaches Flower without our CLI: check it here.
    argv = sys.argv[1:]
    if "flower" not in argv:
        return
    if not any(a.startswith(("--basic-auth", "--basic_auth", "--auth")) for a in argv):
        flower_auth_arguments()
    protect_flower_metrics()


_guard_plain_flower()

use_for_redis_urls()
app = Celery("csgoflip_jobs", task_cls="csgoflip_jobs.engine.job_task:JobTask")
app.config_from_object("celeryconfig")
app.steps["consumer"].add(JobKeeper)


def _refuse_evicting_broker(**_: Any) -> None:
    try:
        check_eviction_policy(broker_client())
    except UnsafeBrokerError as exc:
        raise SystemExit(f"csgoflip-jobs: refusing to start: {exc}") from None


worker_init.connect(_refuse_evicting_broker, weak=False)
