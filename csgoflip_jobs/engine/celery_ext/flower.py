"""Flower, however it is started, with the platform's credentials, settings and pages.

``csgoflip-jobs flower`` and ``celery -A csgoflip_jobs flower`` both call
:func:`prepare` before Flower builds its application:

* Every request is checked by :mod:`.flower_auth`: FLOWER_USER / FLOWER_PASSWORD may
  do everything, FLOWER_VIEWER_USER / FLOWER_VIEWER_PASSWORD only read, API tokens
  open ``/api/jobs``; without credentials Flower answers the loopback only, and with
  APP_ENV=production it refuses to start without them (it can revoke tasks and shut
  workers down). No page can be framed.
* Settings for a dashboard that runs for weeks: at most FLOWER_MAX_TASKS tasks kept
  in memory, offline workers dropped after FLOWER_PURGE_OFFLINE_WORKERS_S (Flower's
  own command-line options and variables still win, as they are read afterwards).
* The Jobs pages and ``/api/jobs`` (:mod:`.flower_jobs`), a Jobs link in the
  navigation bar and the Broker page's depths labelled as waiting only
  (:mod:`.flower_templates`).
* Prometheus' ``/metrics`` asks for the same credentials (Flower serves it to anyone:
  task, worker and queue names) and carries the queues' numbers read from Redis
  (:mod:`csgoflip_jobs.engine.board.prometheus`). ``/healthcheck`` stays open.
* With REDIS_SENTINELS, the Broker page (queue depths) finds the master through every
  sentinel; Flower's own reader asks only the first one, so it failed whenever that
  sentinel was down, and opened new sentinel connections on every page view.
"""

from __future__ import annotations

from typing import Any

from csgoflip_jobs.engine.celery_ext.flower_auth import configured
from csgoflip_jobs.engine.celery_ext.flower_auth import install as install_auth

__all__ = ["REFUSAL", "configured", "prepare"]
from csgoflip_jobs.helpers.clients import make_async_client
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
    users = configured().users
    if users:
        # Flower reads this as "credentials are configured" (its cross-site checks);
        # the check itself is flower_auth's.
        options.basic_auth = [f"{name}:{password.decode()}" for name, password, _ in users]
    elif settings.is_production:
        raise SystemExit(REFUSAL)
    install_auth()
    options.max_tasks = settings.flower_max_tasks
    options.purge_offline_workers = settings.flower_purge_offline_workers_s
    _install_jobs_pages(app)
    _protect_metrics(app)
    _read_queues_through_every_sentinel()


def _install_jobs_pages(app: Any) -> None:
    """Put the Jobs routes before Flower's catch-all 404 route, and serve every page
    (Flower's and ours) from the amended templates."""
    from pathlib import Path

    from flower import urls

    from csgoflip_jobs.engine.board.pages import JobsBoard
    from csgoflip_jobs.engine.celery_ext.flower_jobs import handlers
    from csgoflip_jobs.engine.celery_ext.flower_templates import template_loader

    if any(getattr(route, "name", None) == "jobs" for route in urls.handlers):
        return
    catch_all = [i for i, route in enumerate(urls.handlers) if _pattern(route) == r".*"]
    at = catch_all[0] if catch_all else len(urls.handlers)
    urls.handlers[at:at] = handlers(JobsBoard(app))
    urls.settings["template_loader"] = template_loader(Path(urls.settings["template_path"]))


def _pattern(route: Any) -> str | None:
    """A route's pattern: Flower lists both url() objects and (pattern, handler) tuples."""
    if isinstance(route, tuple):
        return str(route[0])
    regex = getattr(route, "regex", None)
    return regex.pattern.rstrip("$") if regex is not None else None


def _protect_metrics(app: Any) -> None:
    """/metrics behind Flower's authentication, with the queues read just before."""
    import asyncio

    from flower.views.monitor import Metrics
    from prometheus_client import REGISTRY
    from tornado.web import authenticated

    from csgoflip_jobs.engine.board.prometheus import QueueNumbers

    if getattr(Metrics.get, "csgoflip_protected", False):
        return
    numbers = QueueNumbers(app)
    flowers_get = Metrics.get

    async def get(self: Any) -> None:
        # Read Redis in Flower's executor: a slow Redis must not stall Flower's loop.
        await asyncio.get_running_loop().run_in_executor(None, numbers.refresh)
        await flowers_get(self)

    protected = authenticated(get)
    protected.csgoflip_protected = True  # type: ignore[attr-defined]
    REGISTRY.register(numbers)
    Metrics.get = protected


def _read_queues_through_every_sentinel() -> None:
    from flower.utils import broker

    if getattr(broker.RedisSentinel, "csgoflip_every_sentinel", False):
        return

    class EverySentinel(broker.RedisSentinel):  # type: ignore[misc]
        """Flower's Sentinel broker reader on the platform's Sentinel client (one per
        process: Flower builds a reader per page view and closes only its pool)."""

        csgoflip_every_sentinel = True
        _client: Any = None

        def _get_redis_client(self, broker_options: Any, broker_use_ssl: Any) -> Any:
            if EverySentinel._client is None:
                EverySentinel._client = make_async_client(
                    get_settings().broker_url,
                    socket_connect_timeout=self.socket_connect_timeout,
                    socket_timeout=self.socket_timeout,
                )
            return EverySentinel._client

    broker.RedisSentinel = EverySentinel
