"""Private PostgreSQL clusters for tests: ``initdb`` in a temporary directory, on a free
port of 127.0.0.1, with password-only (scram-sha-256) TCP authentication.

initdb and pg_ctl refuse to run as root, so as root they run as the ``postgres`` user
(``runuser``), in a directory that user owns; as anyone else, as that user.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

CLUSTER_USER = "postgres"
"""Who owns the cluster when the tests run as root (Debian's PostgreSQL user)."""
TIMEOUT_S = 60


def postgres_bin_dir() -> Path | None:
    """Debian's newest PostgreSQL server binaries (/usr/lib/postgresql/<version>/bin)."""
    found = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/initdb"),
        key=lambda path: int(path.parent.parent.name) if path.parent.parent.name.isdigit() else 0,
    )
    return found[-1].parent if found else None


def _as_owner(command: list[str]) -> list[str]:
    if os.geteuid() != 0:
        return command
    return ["runuser", "-u", CLUSTER_USER, "--", *command]


@dataclass
class PrivateCluster:
    """A cluster in ``directory / "data"`` that listens on 127.0.0.1:``port`` only."""

    bin_dir: Path
    directory: Path
    port: int

    @property
    def data(self) -> Path:
        return self.directory / "data"

    @property
    def pg_ctl(self) -> Path:
        return self.bin_dir / "pg_ctl"

    @property
    def hba(self) -> Path:
        return self.data / "pg_hba.conf"

    def start(self) -> None:
        """Start it and wait until it accepts connections."""
        log = self.directory / "server.log"
        self._pg_ctl("-l", str(log), "-w", "-t", str(TIMEOUT_S), "start")

    def stop(self) -> None:
        """Stop it at once if it runs (``-m immediate``: a throwaway cluster)."""
        status = subprocess.run(
            _as_owner([str(self.pg_ctl), "-D", str(self.data), "status"]),
            capture_output=True,
            timeout=TIMEOUT_S,
        )
        if status.returncode == 0:
            self._pg_ctl("-m", "immediate", "-w", "stop")

    def remove(self) -> None:
        """Stop it and delete its directory."""
        self.stop()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _pg_ctl(self, *args: str) -> None:
        subprocess.run(
            _as_owner([str(self.pg_ctl), "-D", str(self.data), *args]),
            check=True,
            capture_output=True,
            timeout=TIMEOUT_S,
        )


def create_cluster(bin_dir: Path, port: int) -> PrivateCluster:
    """initdb a cluster whose pg_hba.conf asks every TCP client for a password (and
    so lacks a trust line); not started. Its superuser is ``postgres``."""
    directory = Path(tempfile.mkdtemp(prefix="csgoflip-pg-"))
    cluster = PrivateCluster(bin_dir, directory, port)
    password_file = directory / "password"
    password_file.write_text("not-given-to-the-tests\n")
    if os.geteuid() == 0:
        shutil.chown(directory, CLUSTER_USER)
        shutil.chown(password_file, CLUSTER_USER)
    subprocess.run(
        _as_owner(
            [
                str(bin_dir / "initdb"),
                "-D",
                str(cluster.data),
                "-U",
                "postgres",
                "--pwfile",
                str(password_file),
                "--auth-host=scram-sha-256",
                "--auth-local=scram-sha-256",
                "--no-sync",
            ]
        ),
        check=True,
        capture_output=True,
        timeout=TIMEOUT_S,
    )
    with (cluster.data / "postgresql.conf").open("a") as conf:
        # Its own port and socket directory: nothing shared with the machine's cluster.
        conf.write(
            f"port = {port}\nlisten_addresses = '127.0.0.1'\n"
            f"unix_socket_directories = '{directory}'\nfsync = off\n"
        )
    return cluster
