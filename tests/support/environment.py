"""Point the test process at other settings (a private Redis, a Sentinel group)."""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Callable, Iterator

import kombu.pools
import pytest
from celery import Celery

from csgoflip_jobs import app as default_app
from csgoflip_jobs.celery_app import create_app
from csgoflip_jobs.helpers.connection import broker_client
from csgoflip_jobs.settings import Settings, get_settings, load_settings

FAST_FAILING = {
    "REDIS_CONNECT_TIMEOUT_S": "0.5",
    "REDIS_COMMAND_TIMEOUT_S": "0.5",
    "REDIS_MAX_RETRIES": "3",
}
"""Connection settings small enough that an outage is noticed within a few seconds."""


def give_up_bound_s() -> float:
    """How long one enqueue may take against a Redis that is down or paused, from the
    settings: every try may spend a connect and a command timeout, plus the backoff
    waits between tries, plus 1 s for Python and the machine."""
    settings = get_settings()
    tries = settings.redis_max_retries + 1
    backoff_ms = sum(
        min(n * settings.redis_retry_step_ms, settings.redis_retry_cap_ms)
        for n in range(1, settings.redis_max_retries + 1)
    )
    per_try = settings.redis_connect_timeout_s + settings.redis_command_timeout_s
    return tries * per_try + backoff_ms / 1000 + 1.0


def app_from_environment() -> Celery:
    """A Celery app wired as ``csgoflip_jobs.app`` is, from ``celeryconfig`` as it reads the
    environment now (the package's app read it once, for good), knowing the same tasks."""
    spec = importlib.util.find_spec("celeryconfig")
    assert spec is not None and spec.loader is not None
    config = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(config)
    app = create_app(config, set_as_current=False)
    app.tasks.update(default_app.tasks)  # JobQueue checks names and data against them
    return app


def forget_settings() -> None:
    """Drop the cached settings, the process-wide client and kombu's producer pools: the
    next use reads the environment again. (kombu shares pools between apps whose broker
    has the same host, port and password, even when their TLS options differ.)"""
    if broker_client.cache_info().currsize:
        broker_client().close()
    broker_client.cache_clear()
    get_settings.cache_clear()
    kombu.pools.reset()
    # The package's app holds on to the pools just closed: let it take new ones.
    default_app._pool = None
    default_app.amqp._producer_pool = None


def pointing(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[dict[str, str]], Celery]]:
    """For a fixture: yields ``point(env)``, which sets the variables, makes the
    settings, clients and kombu pools be made anew, and returns a Celery app built from
    them; everything is forgotten again at the end."""
    # The package's app reads celeryconfig lazily: make it read it (and import the task
    # modules, whose tasks the new apps copy) from the suite's environment now.
    assert default_app.conf.broker_url == get_settings().broker_url
    default_app.loader.import_default_modules()
    apps: list[Celery] = []

    def point(env: dict[str, str]) -> Celery:
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        forget_settings()
        apps.append(app_from_environment())
        return apps[-1]

    yield point
    for app in apps:
        app.close()
    forget_settings()  # monkeypatch restores the environment right after this


def settings_from(monkeypatch: pytest.MonkeyPatch, **env: str) -> Settings:
    """Settings read from ``env`` alone (every REDIS_* and APP_ENV variable unset first)."""
    for name in list(os.environ):
        if name.startswith(("REDIS_", "APP_ENV")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    return load_settings()
