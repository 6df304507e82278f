"""Flower, however it is started, with the platform's credentials and settings.

``csgoflip-jobs flower`` and ``celery -A csgoflip_jobs flower`` both call
:func:`prepare` before Flower builds its application:

* FLOWER_USER / FLOWER_PASSWORD become Flower's basic auth (unless ``--basic-auth``
  names other credentials); with APP_ENV=production Flower refuses to start
  without them: it can revoke tasks and shut workers down.
* Settings for a dashboard that runs for weeks: at most FLOWER_MAX_TASKS tasks kept
  in memory, offline workers dropped after FLOWER_PURGE_OFFLINE_WORKERS_S (Flower's
  own command-line options and variables still win, as they are read afterwards).
* Prometheus' ``/metrics`` asks for the same credentials; Flower serves it to
  anyone (task, worker and queue names). ``/healthcheck`` stays open.
"""

from __future__ import annotations

from typing import Any

from csgoflip_jobs.settings import get_settings

REFUSAL = (
    "csgoflip-jobs: refusing to start Flower without credentials in production: "
    "set FLOWER_USER and FLOWER_PASSWORD"
)


def prepare(app: Any) -> None:
    """Apply the platform's Flower settings to Flower's options (idempotent)."""
    import flower.options  # noqa: F401 - defines Flower's options on tornado's registry
    from tornado.options import options

    settings = get_settings()
    if settings.flower_user and settings.flower_password:
        if not options.basic_auth:
            options.basic_auth = [f"{settings.flower_user}:{settings.flower_password}"]
    elif settings.is_production:
        raise SystemExit(REFUSAL)
    options.max_tasks = settings.flower_max_tasks
    options.purge_offline_workers = settings.flower_purge_offline_workers_s
    _protect_metrics()


def _protect_metrics() -> None:
    from flower.views.monitor import Metrics
    from tornado.web import authenticated

    if not getattr(Metrics.get, "csgoflip_protected", False):
        protected = authenticated(Metrics.get)
        protected.csgoflip_protected = True  # type: ignore[attr-defined]
        Metrics.get = protected
