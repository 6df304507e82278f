"""scripts/ensure-services.sh's PostgreSQL step against a real PostgreSQL: a private
cluster (initdb + pg_ctl on a free port) whose pg_hba.conf asks for a password and
lacks the trust line, as on a machine where PostgreSQL was installed before, or by
an earlier run that was interrupted. The step must end reachable without a prompt,
or say in one line why it cannot."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from tests.support.postgres_cluster import PrivateCluster, create_cluster, postgres_bin_dir
from tests.support.redis_servers import free_port

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "ensure-services.sh"
STEP_BOUND_S = 45.0
"""A run of the step, cluster start included, takes a few seconds; this bounds it."""
TRUST_LINE = "host all all 127.0.0.1/32 trust"


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    """A private cluster, not started; stopped and removed after the test."""
    bin_dir = postgres_bin_dir()
    if bin_dir is None:
        if os.environ.get("REQUIRE_POSTGRES") == "1":
            pytest.fail("PostgreSQL's server binaries are not installed (/usr/lib/postgresql)")
        pytest.skip("PostgreSQL's server binaries are not installed")
    private = create_cluster(bin_dir, free_port())
    yield private
    private.remove()


def run_step(
    cluster: PrivateCluster, cwd: Path, port: int | None = None
) -> subprocess.CompletedProcess[str]:
    """The PostgreSQL step, pointed at ``cluster`` (expecting it on ``port``), with no
    standard input (a prompt would read EOF and fail) and no password anywhere, run
    from ``cwd`` (pytest's tmp_path: as root, a directory the cluster's owner cannot
    enter, as a clone in /root is)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PG")}
    env.update(
        CSGOFLIP_PG_PORT=str(port or cluster.port),
        CSGOFLIP_PG_DATA=str(cluster.data),
        CSGOFLIP_PG_CTL=str(cluster.pg_ctl),
        CSGOFLIP_PG_WAIT_S="5",
        PGPASSFILE=str(cluster.directory / "no-such-pgpass"),  # no password from a file either
    )
    started = time.monotonic()
    result = subprocess.run(
        ["bash", str(SCRIPT), "postgres"],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        timeout=STEP_BOUND_S,
    )
    assert time.monotonic() - started < STEP_BOUND_S
    return result


def connects_without_password(port: int) -> bool:
    try:
        with psycopg.connect(
            host="127.0.0.1", port=port, user="postgres", dbname="test", connect_timeout=3
        ) as connection:
            return connection.execute("SELECT 1").fetchone() == (1,)
    except psycopg.OperationalError:
        return False


def first_rule(hba: Path) -> str:
    rules = [line for line in hba.read_text().splitlines() if line.strip()[:1] not in ("", "#")]
    return " ".join(rules[0].split())


@pytest.mark.parametrize("running", [True, False], ids=["running", "stopped"])
def test_a_cluster_without_the_trust_line_ends_reachable_without_a_prompt(
    cluster: PrivateCluster, running: bool, tmp_path: Path
) -> None:
    """Running: the line is added and PostgreSQL reloaded. Stopped (an interrupted
    earlier run): the line is added and the cluster started. Either way the tests can
    connect as postgres with no password, to a ``test`` database the step made."""
    if running:
        cluster.start()
        assert not connects_without_password(cluster.port)
    owner = cluster.hba.stat()

    result = run_step(cluster, tmp_path)

    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stderr == ""
    assert connects_without_password(cluster.port)
    assert first_rule(cluster.hba) == TRUST_LINE
    after = cluster.hba.stat()
    assert (after.st_uid, after.st_mode) == (owner.st_uid, owner.st_mode)
    assert "Password" not in result.stdout + result.stderr

    # Again, now that it is reachable: nothing changes.
    hba = cluster.hba.read_text()
    again = run_step(cluster, tmp_path)
    assert again.returncode == 0, again.stderr
    assert (again.stdout, again.stderr) == ("", "")
    assert cluster.hba.read_text() == hba


def test_a_cluster_on_another_port_is_named_in_one_line(
    cluster: PrivateCluster, tmp_path: Path
) -> None:
    """The cluster runs, but on another port than the tests use (as a second cluster
    on 5433): the step fails within its wait and says, in one line, what it found."""
    cluster.start()
    expected = free_port()

    result = run_step(cluster, tmp_path, port=expected)

    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert f"cannot connect to PostgreSQL on 127.0.0.1:{expected}" in lines[0]
    assert "(Connection refused)" in lines[0]
    assert f"found cluster in {cluster.data}: port {cluster.port}, online" in lines[0]
    assert "Password" not in result.stdout + result.stderr
