"""Point the test process at other settings (a private Redis, a Sentinel group)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from celery import Celery

from csgoflip_jobs import app as default_app
from csgoflip_jobs.settings import get_settings
from tests.test_faults_and_security import app_from_environment, forget_settings


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
