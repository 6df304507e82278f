"""Database engine and sessions (SQLAlchemy 2), one engine per process.

DATABASE_URL defaults to a SQLite file; PostgreSQL in production. SQLite runs
in WAL mode with a busy timeout so several worker processes can share it.
Schema changes are Alembic migrations (``csgoflip_jobs/payments/migrations``);
:func:`migrate` brings a database to the newest one.
"""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from csgoflip_jobs.settings import get_settings

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
SQLITE_BUSY_TIMEOUT_S = 30


def make_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets WAL, foreign keys and a busy timeout."""
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": SQLITE_BUSY_TIMEOUT_S})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def _sqlite_pragmas(connection: Any, _record: Any) -> None:
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


@cache
def _engine_for(url: str, pid: int) -> Engine:
    # Keyed by pid: a forked worker child must not reuse its parent's connections.
    return make_engine(url)


def get_engine() -> Engine:
    """This process's engine for DATABASE_URL."""
    return _engine_for(get_settings().database_dsn, os.getpid())


def session_factory(engine: Engine | None = None) -> sessionmaker[Session]:
    """Sessions bound to ``engine`` (default: DATABASE_URL's)."""
    return sessionmaker(engine or get_engine(), expire_on_commit=False)


def migrate(url: str | None = None) -> None:
    """Upgrade the database at ``url`` (default DATABASE_URL) to the newest migration."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url or get_settings().database_dsn)
    command.upgrade(config, "head")
