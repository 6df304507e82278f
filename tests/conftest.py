"""Test set-up: a real Redis, a clean database per test, real Celery workers.

Redis: REDIS_URL when set; else database 9 of localhost:6379 when it answers;
else a private ``redis-server`` on a free port. The URL is put into the
environment before csgoflip_jobs is imported, so the package and every worker
the tests start use it.

Run side by side (pytest-xdist, ``-n 2``: scripts/test.sh), the first test process
takes that Redis (REDIS_URL, or database 9 of localhost) and every other one a
private ``redis-server`` of its own (a database of the same server would not do:
pub/sub channels are server-wide, and a test listening to a user's events would hear
another's), and each its own PostgreSQL database (POSTGRES_TEST_DATABASE).
"""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
import redis

from tests.support.redis_servers import RedisServer, answers, start_redis
from tests.support.round_trips import round_trips  # noqa: F401 - a fixture for every test module
from tests.support.workers import WorkerProcess, start_worker

if TYPE_CHECKING:
    from celery import Celery

_private_server: RedisServer | None = None


def pytest_configure(config: pytest.Config) -> None:
    global _private_server
    if getattr(config.option, "numprocesses", None) and "PYTEST_XDIST_WORKER" not in os.environ:
        return  # the controller of side-by-side processes: it runs no test
    side_by_side = os.environ.get("PYTEST_XDIST_WORKER", "gw0")
    if side_by_side != "gw0":
        os.environ["POSTGRES_TEST_DATABASE"] = f"csgoflip_test_{side_by_side}"
        os.environ.pop("REDIS_URL", None)  # the first process's, given or found
    if not os.environ.get("REDIS_URL"):
        local = "redis://127.0.0.1:6379/9"
        if side_by_side == "gw0" and answers(local):
            os.environ["REDIS_URL"] = local
        else:
            _private_server = start_redis()
            os.environ["REDIS_URL"] = _private_server.url
    os.environ.setdefault("APP_ENV", "test")
    import tests.support.jobs  # noqa: F401 - registers the test tasks in this process too


def pytest_unconfigure(config: pytest.Config) -> None:
    if _private_server is not None:
        _private_server.stop()


@pytest.fixture(scope="session")
def redis_url() -> str:
    """URL of the Redis database the tests own."""
    return os.environ["REDIS_URL"]


@pytest.fixture
def redis_client(redis_url: str) -> Iterator[redis.Redis]:
    """A client of the test database, flushed before the test."""
    client = redis.Redis.from_url(redis_url)
    client.flushdb()
    yield client
    client.close()


@pytest.fixture
def workers(tmp_path: Path, redis_client: redis.Redis) -> Iterator[Callable[..., WorkerProcess]]:
    """Factory starting real workers; every one is killed when the test ends."""
    started: list[WorkerProcess] = []

    def factory(**kwargs: Any) -> WorkerProcess:
        name = kwargs.pop("name", f"w{len(started) + 1}")
        worker = start_worker(tmp_path / f"{name}.log", name=name, **kwargs)
        started.append(worker)
        return worker

    yield factory
    for worker in started:
        worker.kill()


@pytest.fixture
def runs(redis_client: redis.Redis) -> Callable[[], list[dict[str, Any]]]:
    """Read the records the test tasks wrote (tests.support.jobs.RUNS_KEY)."""
    from tests.support.jobs import RUNS_KEY

    def read() -> list[dict[str, Any]]:
        return [json.loads(item) for item in redis_client.lrange(RUNS_KEY, 0, -1)]

    return read


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A migrated, empty payments database; every payment test runs on both kinds."""
    from csgoflip_jobs.payments.database import migrate
    from tests.support.databases import postgres_url, sqlite_url

    url = sqlite_url(tmp_path) if request.param == "sqlite" else postgres_url()
    migrate(url)
    return url


@pytest.fixture
def servers() -> Iterator[Callable[..., RedisServer]]:
    """Start private redis-servers (arguments as for ``start_redis``); all stop at the end."""
    started: list[RedisServer] = []

    def start(*args: str, **kwargs: Any) -> RedisServer:
        server = start_redis(*args, **kwargs)
        started.append(server)
        return server

    yield start
    for server in started:
        if server.process.poll() is None:
            os.kill(server.process.pid, signal.SIGCONT)  # in case a test paused it
        server.stop()


@pytest.fixture
def use_redis(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Celery]]:
    """Point this process at a Redis: ``use_redis(url, **env)`` sets REDIS_URL and the
    other variables, re-reads the settings and returns a Celery app for ``JobQueue``."""
    from tests.support.environment import pointing  # imports csgoflip_jobs: not before

    points = pointing(monkeypatch)
    point = next(points)
    yield lambda url, **env: point({"REDIS_URL": url, **env})
    next(points, None)  # its clean-up


@pytest.fixture
def start_workers(tmp_path: Path) -> Iterator[Callable[..., WorkerProcess]]:
    """Start real ``celery worker`` processes with extra environment; killed at the end."""
    started: list[WorkerProcess] = []

    def start(env: dict[str, str], **kwargs: Any) -> WorkerProcess:
        name = kwargs.pop("name", f"fault{len(started) + 1}")
        worker = start_worker(tmp_path / f"{name}.log", env=env, name=name, **kwargs)
        started.append(worker)
        return worker

    yield start
    for worker in started:
        worker.kill()
