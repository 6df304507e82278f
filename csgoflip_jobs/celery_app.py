"""The platform's Celery app: ``celery -A csgoflip_jobs worker -Q payment,notification,email``.

Creating the app reads no setting and opens no connection; Celery loads
``celeryconfig`` (the queues, routes and every setting) when the configuration
is first used. At that moment a bad setting raises
:class:`~csgoflip_jobs.errors.ConfigError` naming the variable, or, inside a
Celery command (worker, beat, flower, inspect ...), stops it with that one line;
then the platform's kombu transport is installed for the broker. A starting
worker also refuses a broker that may evict keys in production.
"""

from __future__ import annotations

import logging
from typing import Any

import click
from celery import Celery
from celery.signals import worker_init

from csgoflip_jobs.engine import log_context, tracing
from csgoflip_jobs.engine.celery_ext import flower
from csgoflip_jobs.engine.celery_ext.job_keeper import JobKeeper
from csgoflip_jobs.engine.celery_ext.task_events import BatchedTaskEvents
from csgoflip_jobs.engine.celery_ext.transport import install_transport
from csgoflip_jobs.engine.job_queue import JobQueue, queue_names
from csgoflip_jobs.errors import ConfigError
from csgoflip_jobs.helpers.connection import broker_client
from csgoflip_jobs.helpers.errors import UnsafeBrokerError
from csgoflip_jobs.helpers.monitoring import check_eviction_policy
from csgoflip_jobs.settings import get_settings

log = logging.getLogger(__name__)

CONFIG_ERROR_PREFIX = "csgoflip-jobs: configuration error: "


def _celery_command() -> click.Context | None:
    """The Click context of the running ``celery`` command; None outside one (a web app)."""
    ctx = click.get_current_context(silent=True)
    if ctx is None:
        return None
    from celery.bin.celery import celery as celery_group

    root = ctx.find_root()
    return root if root.command is celery_group else None


def _config_error(exc: ConfigError) -> BaseException:
    """What to raise for a bad setting: inside a Celery command, an exit with one line
    naming the variable; elsewhere (a web app) the ConfigError itself."""
    if _celery_command() is not None:
        return SystemExit(f"{CONFIG_ERROR_PREFIX}{exc}")
    return exc


def _check_settings(**_: Any) -> None:
    try:
        get_settings()
    except ConfigError as exc:
        raise _config_error(exc) from None


def _install_transport(sender: Celery, **_: Any) -> None:
    try:
        install_transport(sender.conf.broker_transport_options)
    except ConfigError as exc:
        raise _config_error(exc) from None


def _observe(**_: Any) -> None:
    # Traces when OTEL_* asks for them (a prefork child's span processor restarts after
    # the fork), and the running job on every log line; once the settings are read.
    tracing.start()
    log_context.install()


def _refuse_evicting_broker(**_: Any) -> None:
    try:
        check_eviction_policy(broker_client())
    except UnsafeBrokerError as exc:
        raise SystemExit(f"csgoflip-jobs: refusing to start: {exc}") from None


def job_counts_by_queue() -> dict[str, dict[str, int]]:
    """``get_job_counts()`` of every queue this app defines, in their configured order."""
    return {name: JobQueue(name, app=app).get_job_counts() for name in queue_names(app)}


def create_app(config: object = "celeryconfig", *, set_as_current: bool = True) -> Celery:
    """A Celery app wired as the platform's, configured from ``config`` (a module or
    its name): JobTask as the task class, the job keeper and batched task events in
    every worker, the settings check and the platform's transport when the
    configuration loads."""
    new = Celery(
        "csgoflip_jobs",
        task_cls="csgoflip_jobs.engine.job_task:JobTask",
        set_as_current=set_as_current,
    )
    new.config_from_object(config)
    new.steps["consumer"].add(JobKeeper)
    new.steps["consumer"].add(BatchedTaskEvents)
    new.on_configure.connect(_check_settings, weak=False)
    new.on_after_configure.connect(_install_transport, weak=False)
    new.on_after_configure.connect(_observe, weak=False)
    return new


app = create_app()
worker_init.connect(_refuse_evicting_broker, weak=False)

# `celery -A csgoflip_jobs flower` reaches Flower without csgoflip-jobs' CLI: this is
# the one moment the platform sees it, as Celery loads the app for that command.
if (_command := _celery_command()) is not None and _command.invoked_subcommand == "flower":
    _check_settings()
    flower.prepare(app)
