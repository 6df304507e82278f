"""A Redis Sentinel group on 127.0.0.1 for the high-availability tests: a master, its
replicas and the sentinels watching them, each a child process on a free port.

Debian's ``redis-server`` runs a sentinel when given ``--sentinel``. Sentinel rewrites
its configuration file, so each one gets a file of its own in the group's directory.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import redis

from tests.support.polling import wait_until
from tests.support.redis_servers import RedisServer, TlsFiles, free_port, start_redis

MASTER_NAME = "csgoflip-queue"

DOWN_AFTER_MS = 1500
"""Sentinel's down-after-milliseconds here. Not 1000: a sentinel pings every second, and
right after a failover it counts the new master's silence from the moment it switched
to it, so at 1000 ms the first reply can come too late: the new master is seen down
("+sdown" about 1 s after "+switch-master"), a second failover promotes the old master
just restarted without its data, and the new master resyncs from it, wiping every job
(seen in about 1 run in 3 of the failover tests on a 2-core machine)."""

NODE_ARGS = ("--repl-ping-replica-period", "1")
"""Replicas notice a lost master within a second (and, as every server start_redis
starts, sync at once)."""


@dataclass
class SentinelGroup:
    """The data nodes (by port) and sentinels of one monitored master."""

    directory: Path
    nodes: dict[int, RedisServer | None]
    sentinel_ports: list[int]
    sentinels: list[subprocess.Popen[bytes]] = field(default_factory=list)
    tls: TlsFiles | None = None
    """When set, every node and sentinel speaks TLS only, with these files."""

    @property
    def env(self) -> dict[str, str]:
        """The settings pointing the platform at this group."""
        env = {
            "REDIS_SENTINELS": ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports),
            "REDIS_SENTINEL_MASTER": MASTER_NAME,
        }
        if self.tls:
            env.update(REDIS_SENTINEL_TLS="1", REDIS_TLS_CA_FILE=str(self.tls.ca_cert))
        return env

    def sentinel(self, index: int = 0) -> redis.Redis:
        """A client of one sentinel."""
        port = self.sentinel_ports[index]
        return redis.Redis(port=port, socket_timeout=2, decode_responses=True, **_ssl(self.tls))

    def node(self, port: int) -> redis.Redis:
        """A client of one data node (the test's own, outside the platform)."""
        return redis.Redis(port=port, socket_timeout=5, socket_connect_timeout=1, **_ssl(self.tls))

    def master_port(self) -> int:
        """The port of the master as the first answering sentinel sees it."""
        for index in range(len(self.sentinel_ports)):
            try:
                return master_addr(self.sentinel(index))[1]
            except redis.ConnectionError:
                continue
        raise AssertionError("no sentinel answers")

    def replica_ports(self) -> list[int]:
        """The data nodes that run and are not the master."""
        master = self.master_port()
        return [port for port, server in self.nodes.items() if server and port != master]

    def wait_ready(self, replicas: int, timeout: float = 30) -> None:
        """Wait until every sentinel knows the other sentinels and ``replicas`` replicas
        in sync with the master: only then can they agree on a failover."""
        others = len(self.sentinel_ports) - 1

        def ready() -> bool:
            for index in range(len(self.sentinel_ports)):
                state: Any = self.sentinel(index).sentinel_master(MASTER_NAME)
                if int(state["num-other-sentinels"]) < others:
                    return False
                if int(state["num-slaves"]) < replicas or not state["is_master"]:
                    return False
            info = self.node(self.master_port()).info("replication")
            online = [k for k, v in info.items() if k.startswith("slave") and isinstance(v, dict)]
            in_sync = [k for k in online if info[k].get("state") == "online"]
            return len(in_sync) >= replicas

        wait_until(ready, timeout, interval=0.2)

    def kill(self, port: int) -> None:
        """SIGKILL a data node (no shutdown, no final write)."""
        server = self.nodes[port]
        assert server is not None
        server.process.send_signal(signal.SIGKILL)
        server.process.wait(timeout=10)
        self.nodes[port] = None

    def restart(self, port: int) -> RedisServer:
        """Start a killed node again on its port, with its original arguments (no
        ``replicaof``): the sentinels are to turn it into a replica."""
        server = start_redis(
            *self._node_args(port), port=port, directory=self._node_dir(port), tls=self.tls
        )
        self.nodes[port] = server
        return server

    def wait_promoted(self, old_master: int, timeout: float = 30) -> int:
        """Wait until every sentinel names another master, and that node says it is one;
        its port."""

        def promoted() -> int | None:
            ports = set()
            for index in range(len(self.sentinel_ports)):
                ports.add(master_addr(self.sentinel(index))[1])
            if len(ports) != 1 or old_master in ports:
                return None
            port = ports.pop()
            role = self.node(port).info("replication")["role"]
            return port if role == "master" else None

        port = wait_until(promoted, timeout, interval=0.05)
        assert port is not None
        return port

    def wait_replica_of(self, port: int, master: int, timeout: float = 60) -> None:
        """Wait until the node at ``port`` replicates ``master`` and is in sync."""

        def in_sync() -> bool:
            info = self.node(port).info("replication")
            return (
                info["role"] == "slave"
                and int(info["master_port"]) == master
                and info["master_link_status"] == "up"
                and not info.get("master_sync_in_progress")
            )

        try:
            wait_until(in_sync, timeout, interval=0.2)
        except AssertionError as exc:
            raise AssertionError(f"{exc}; {self.diagnosis(port)}") from None

    def diagnosis(self, port: int) -> str:
        """The node's replication state and the last lines of every log of the group,
        for a failure message: what the sentinels did, or did not do."""
        try:
            state: Any = self.node(port).info("replication")
        except redis.RedisError as exc:
            state = repr(exc)
        tails = []
        for log in sorted(self.directory.glob("*.log")):
            lines = log.read_text(errors="replace").splitlines()[-15:]
            tails.append(f"--- {log.name}\n" + "\n".join(lines))
        return f"node {port}: {state}\n" + "\n".join(tails)

    def stop(self) -> None:
        """Stop every sentinel and node, and remove the directory."""
        for process in self.sentinels:
            if process.poll() is None:
                process.kill()
            process.wait()
        for server in self.nodes.values():
            if server is not None:
                if server.process.poll() is None:
                    os.kill(server.process.pid, signal.SIGCONT)  # in case a test paused it
                server.process.kill()
                server.process.wait()
        shutil.rmtree(self.directory, ignore_errors=True)

    def _node_args(self, port: int) -> list[str]:
        tls = ["--tls-replication", "yes"] if self.tls else []
        return [*NODE_ARGS, *tls, "--logfile", str(self.directory / f"redis-{port}.log")]

    def _node_dir(self, port: int) -> Path:
        # One per node: a replica's sync writes dump.rdb there, which a node sharing the
        # directory would load as its own data when it restarts.
        path = self.directory / f"node-{port}"
        path.mkdir(exist_ok=True)
        return path


def master_addr(sentinel: redis.Redis) -> tuple[str, int]:
    """The master's address as one sentinel names it."""
    host, port = sentinel.execute_command("SENTINEL", "get-master-addr-by-name", MASTER_NAME)
    return str(host), int(port)


def start_sentinel_group(
    replicas: int = 1,
    sentinels: int = 3,
    down_after_ms: int = DOWN_AFTER_MS,
    failover_timeout_ms: int = 2000,
    tls: TlsFiles | None = None,
) -> SentinelGroup:
    """Start a master, ``replicas`` replicas of it and ``sentinels`` sentinels (quorum:
    a majority), and wait until the sentinels know each other and the replicas. With
    ``tls`` all of them speak TLS only, replication and the sentinels' links included."""
    directory = Path(tempfile.mkdtemp(prefix="csgoflip-sentinel-"))
    group = SentinelGroup(directory, {}, [free_port() for _ in range(sentinels)], tls=tls)
    try:
        master_port = free_port()
        group.nodes[master_port] = start_redis(
            *group._node_args(master_port),
            port=master_port,
            directory=group._node_dir(master_port),
            tls=tls,
        )
        for _ in range(replicas):
            port = free_port()
            args = [*group._node_args(port), "--replicaof", "127.0.0.1", str(master_port)]
            group.nodes[port] = start_redis(
                *args, port=port, directory=group._node_dir(port), tls=tls
            )
        monitor = (master_port, sentinels // 2 + 1, down_after_ms, failover_timeout_ms)
        for port in group.sentinel_ports:
            group.sentinels.append(_start_sentinel(directory, port, monitor, tls))
        group.wait_ready(replicas)
    except BaseException:
        group.stop()
        raise
    return group


def _ssl(tls: TlsFiles | None) -> dict[str, Any]:
    return {"ssl": True, "ssl_ca_certs": str(tls.ca_cert)} if tls else {}


def _listen(port: int, tls: TlsFiles | None) -> list[str]:
    if tls is None:
        return [f"port {port}"]
    return [
        *("port 0", f"tls-port {port}", "tls-auth-clients no", "tls-replication yes"),
        f"tls-cert-file {tls.server_cert}",
        f"tls-key-file {tls.server_key}",
        f"tls-ca-cert-file {tls.ca_cert}",
    ]


def _start_sentinel(
    directory: Path, port: int, monitor: tuple[int, int, int, int], tls: TlsFiles | None
) -> subprocess.Popen[bytes]:
    """A sentinel on ``port`` watching (master port, quorum, down-after ms, failover ms)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    master_port, quorum, down_after_ms, failover_ms = monitor
    config = directory / f"sentinel-{port}.conf"
    config.write_text(
        "\n".join(
            [
                *_listen(port, tls),
                "bind 127.0.0.1",
                f"dir {directory}",
                f"logfile {directory / f'sentinel-{port}.log'}",
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {master_port} {quorum}",
                f"sentinel down-after-milliseconds {MASTER_NAME} {down_after_ms}",
                f"sentinel failover-timeout {MASTER_NAME} {failover_ms}",
                f"sentinel parallel-syncs {MASTER_NAME} 1",
                "",
            ]
        )
    )
    process = subprocess.Popen(
        [binary, str(config), "--sentinel"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    client = redis.Redis(port=port, socket_connect_timeout=0.2, **_ssl(tls))
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            client.ping()
            return process
        except redis.ConnectionError:
            time.sleep(0.05)
    process.kill()
    raise RuntimeError(f"sentinel on port {port} did not start")
