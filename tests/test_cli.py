"""The csgoflip-jobs command: enqueue, counts, migrate, reconcile."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import redis
from sqlalchemy import text

from tests.payment_helpers import funded_user, payment_service


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "csgoflip_jobs.cli", *args],
        text=True,
        capture_output=True,
        env={**os.environ, **(env or {})},
        timeout=60,
    )


def test_enqueue_and_counts(redis_client: redis.Redis) -> None:
    added = cli(
        "enqueue",
        "notification",
        "send-notification",
        '{"user_id": 1, "type": "hi"}',
        "--delay",
        "60000",
    )
    assert added.returncode == 0, added.stderr
    counts = json.loads(cli("counts", "--json").stdout)
    assert counts["notification"]["delayed"] == 1
    bad = cli("enqueue", "notification", "send-notification", '{"user": 1}')
    assert bad.returncode != 0 and "bad data for 'send-notification'" in bad.stderr
    not_json = cli("enqueue", "notification", "send-notification", "{oops")
    assert not_json.returncode != 0 and "not JSON" in not_json.stderr


def test_migrate_and_reconcile(database_url: str, redis_client: redis.Redis) -> None:
    env = {"DATABASE_URL": database_url}
    assert cli("migrate", env=env).returncode == 0
    service = payment_service(database_url)
    funded_user(service, 700)
    clean = cli("reconcile", "--json", env=env)
    assert clean.returncode == 0, clean.stderr
    assert json.loads(clean.stdout)["ok"] is True
    with service.sessions() as session, session.begin():
        session.execute(text("UPDATE users SET balance_minor = balance_minor + 1"))
    broken = cli("reconcile", env=env)
    assert broken.returncode == 1
    assert "PROBLEM: user" in broken.stdout and "ledger sums to 700" in broken.stdout
