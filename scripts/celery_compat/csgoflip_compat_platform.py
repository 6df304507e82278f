"""pytest plugin: Celery's integration suite, with every app it builds the platform's.

Loaded in platform mode only (``-p csgoflip_compat_platform``, this directory on
PYTHONPATH: scripts/celery_compat/run.py). The suite's apps all come from
``celery.contrib.pytest``'s ``celery_app`` / ``celery_session_app`` fixtures, which
call ``celery.contrib.testing.app.TestApp``; it is replaced here by a function building
the app with ``csgoflip_jobs.celery_app.create_app`` from the platform's
``celeryconfig``, so the suite's tasks run as the platform's JobTask, through the
platform's transport, result backend, job keeper and batched task events, exactly as
a platform worker runs them. Its configuration, from lowest to highest precedence:

1. Celery's test defaults (``DEFAULT_TEST_CONFIG``: no broker heartbeat, no log
   colour, ...) as defaults, as stock TestApp has them;
2. every setting of ``celeryconfig``: broker and result backend (REDIS_URL: the
   private Redis of the run), serializers, acks-late, visibility timeout, priorities;
3. the suite's ``celery_config`` fixture (``result_extended``,
   ``task_create_missing_queues`` ...) minus ``broker_url`` and ``result_backend``,
   which stay the platform's: they are the point of the comparison;
4. ``task_queues``: the platform's queues plus ``Queue("celery")``, the one queue the
   suite sends every task to and its worker consumes.

The suite's conftest fails any test whose apps configure a queue other than
``celery`` (its ``ZZZZ_set_app_current`` fixture: tests needing more queues belong in
its smoke tests). The platform always defines payment, notification and email, so
that fixture is replaced by the same check with the platform's own queues allowed;
otherwise every test would error in its teardown for a reason unrelated to Celery
compatibility.

Celery private names touched (only here, see each comment): ``celery.contrib.testing.app``
is a public module of Celery's test support, but replacing its ``TestApp`` attribute
relies on ``celery.contrib.pytest._create_app`` importing it at each call.
"""

from __future__ import annotations

from collections.abc import Iterator
from copy import deepcopy
from typing import Any

import celery.contrib.testing.app as testing_app
import pytest
from celery import Celery
from kombu import Queue

SUITE_CONFTEST = "t.integration.conftest"
"""The suite's conftest module, whose queue check is adapted to the platform."""

_stock_test_app = testing_app.TestApp


def platform_test_app(
    name: str | None = None,
    config: dict[str, Any] | None = None,
    enable_logging: bool = False,
    set_as_current: bool = False,
    log: object = None,
    backend: object = None,
    broker: object = None,
    **kwargs: Any,
) -> Celery:
    """Stand-in for ``celery.contrib.testing.app.TestApp`` (same signature): the
    platform's app, configured as the module docstring says.

    ``name``, ``log``, ``enable_logging``: the app keeps the platform's main name and
    logging (the suite enables logging, which makes stock TestApp use the default log
    class too). ``broker`` / ``backend`` / other Celery() arguments (the suite's
    ``celery_parameters``, empty) would change what the platform is: refused.
    """
    del name, log, enable_logging
    if backend is not None or broker is not None or kwargs:
        raise TypeError(
            "csgoflip_compat_platform: the platform's app takes no broker, backend or "
            f"Celery() arguments (got {sorted(kwargs)} broker={broker!r} backend={backend!r})"
        )
    # What stock TestApp imports first: registers the celery.ping shared task.
    from celery.contrib.testing import tasks  # noqa: F401

    import celeryconfig
    from csgoflip_jobs.celery_app import create_app

    app = create_app(celeryconfig, set_as_current=set_as_current)
    defaults = deepcopy(testing_app.DEFAULT_TEST_CONFIG)
    for key in ("broker_url", "result_backend"):
        defaults.pop(key)
    app.add_defaults(defaults)
    suite = {k: v for k, v in (config or {}).items() if k not in ("broker_url", "result_backend")}
    # Set before the app is configured: Celery keeps these as changes applied over the
    # config module when the configuration loads.
    app.conf.update(suite)
    app.conf.task_queues = [*celeryconfig.task_queues, Queue("celery")]
    return app


def platform_queue_names() -> set[str]:
    """The queues the platform defines in every app (celeryconfig.task_queues)."""
    import celeryconfig

    return {queue.name for queue in celeryconfig.task_queues}


@pytest.fixture(autouse=True, name="ZZZZ_set_app_current")
def platform_set_app_current(app: Celery, celery_session_app: Celery) -> Iterator[None]:
    """The suite's ``ZZZZ_set_app_current`` (t/integration/conftest.py), its queue check
    allowing the platform's own queues besides ``celery``."""
    app.set_current()
    app.set_default()
    yield
    platform = platform_queue_names()
    for app_name, test_app in (("function app", app), ("session app", celery_session_app)):
        configured = set(test_app.amqp.queues) - platform
        if configured != {"celery"}:
            pytest.fail(
                f"Integration {app_name} must only use the shared celery queue (besides "
                f"the platform's {sorted(platform)}); found {sorted(configured)}."
            )


def pytest_configure(config: pytest.Config) -> None:
    """Build every app of the suite as the platform's from now on."""
    # celery.contrib.pytest._create_app (private) does `from .testing.app import
    # TestApp` inside each call, so replacing the module attribute reaches every app
    # the celery_app / celery_session_app fixtures build; nothing imported it earlier.
    testing_app.TestApp = platform_test_app


def pytest_unconfigure(config: pytest.Config) -> None:
    """Put stock TestApp back."""
    testing_app.TestApp = _stock_test_app


@pytest.hookimpl(tryfirst=True)
def pytest_plugin_registered(plugin: object, plugin_name: str) -> None:
    """Swap the suite conftest's queue check for :func:`platform_set_app_current`.

    pytest reads a conftest's fixtures when it collects the conftest's directory,
    after the conftest is registered, so the replaced attribute is what it finds.
    """
    if getattr(plugin, "__name__", None) == SUITE_CONFTEST:
        plugin.ZZZZ_set_app_current = platform_set_app_current  # type: ignore[attr-defined]
