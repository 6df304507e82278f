"""Databases for the payment tests: a SQLite file, and PostgreSQL when it answers.

PostgreSQL: 127.0.0.1:5432 (trust auth) or POSTGRES_ADMIN_DSN; each test gets the
``csgoflip_test`` database (POSTGRES_TEST_DATABASE, for runs side by side) with a
freshly created schema. Without a server the
PostgreSQL cases are skipped, unless REQUIRE_POSTGRES=1 (CI), where they fail.
"""

from __future__ import annotations

import os
from pathlib import Path

import psycopg
import pytest

ADMIN_DSN = os.environ.get(
    "POSTGRES_ADMIN_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=test"
)
TEST_DATABASE = os.environ.get("POSTGRES_TEST_DATABASE", "csgoflip_test")


def sqlite_url(directory: Path) -> str:
    """A new SQLite file in ``directory``."""
    return f"sqlite:///{directory / 'ledger.sqlite3'}"


def postgres_url() -> str:
    """A clean ``csgoflip_test`` database, or skip (fail under REQUIRE_POSTGRES=1)."""
    try:
        with psycopg.connect(ADMIN_DSN, autocommit=True, connect_timeout=3) as admin:
            exists = admin.execute(
                "SELECT 1 FROM pg_database WHERE datname = %s", (TEST_DATABASE,)
            ).fetchone()
            if not exists:
                admin.execute(f"CREATE DATABASE {TEST_DATABASE}")
    except psycopg.OperationalError as exc:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            raise
        pytest.skip(f"PostgreSQL is not reachable: {exc}")
    dsn = ADMIN_DSN.replace("dbname=test", f"dbname={TEST_DATABASE}")
    with psycopg.connect(dsn, autocommit=True) as connection:
        connection.execute("DROP SCHEMA public CASCADE")
        connection.execute("CREATE SCHEMA public")
    params = dict(part.split("=", 1) for part in dsn.split())
    return (
        f"postgresql+psycopg://{params['user']}@{params['host']}:{params['port']}"
        f"/{params['dbname']}"
    )
