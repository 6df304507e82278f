"""High-availability findings of ``csgoflip-jobs check``: Sentinel or replicas, durable
enqueue, and Redlock's independent masters.

Why REDLOCK_URLS must not name the nodes of the Sentinel group: Redlock counts a lock
as held when a majority of *independent* masters granted it. A replica is a copy of
one master, fed asynchronously, so a lock granted by the master can be missing on the
replica promoted a moment later, and a second client is granted the same lock; and the
nodes of one group fail together (one Sentinel decision, one failover). N nodes of one
group are one lock server, not N. The fencing tokens (README) still refuse a stale
holder's writes; Redlock needs masters that share nothing.
"""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import redis

from csgoflip_jobs.helpers.sentinel import sentinel_kwargs
from csgoflip_jobs.settings import Settings


@dataclass(frozen=True)
class Finding:
    """One finding: ``ok`` False is unsafe, or only worth a warning when ``advisory``."""

    name: str
    ok: bool | None
    detail: str
    advisory: bool = False


@dataclass
class SentinelView:
    """The group as the reachable sentinels describe it."""

    master: tuple[str, int] | None = None
    quorum: int = 0
    replicas: list[tuple[str, int]] = field(default_factory=list)
    healthy_replicas: int = 0
    reachable: list[str] = field(default_factory=list)
    unreachable: list[str] = field(default_factory=list)


def availability_checks(settings: Settings, client: redis.Redis) -> list[Finding]:
    """Sentinel (master, replicas, quorum) or the master's replicas; whether durable
    enqueue can be honoured; whether REDLOCK_URLS are independent of the group."""
    replicas = int(client.info("replication").get("connected_slaves", 0))
    findings: list[Finding] = []
    if settings.uses_sentinel:
        view = sentinel_view(settings)
        findings.append(_sentinel_finding(settings, view))
        redlock = _redlock_finding(settings, view)
        if redlock is not None:
            findings.append(redlock)
    else:
        findings.append(_replica_finding(settings, replicas))
    if settings.redis_min_replicas_ack:
        wanted = settings.redis_min_replicas_ack
        findings.append(
            Finding(
                "durable enqueue",
                replicas >= wanted,
                f"REDIS_MIN_REPLICAS_ACK={wanted}, the master has {replicas} replica(s)"
                + ("" if replicas >= wanted else ": every add would fail as not replicated"),
            )
        )
    return findings


def sentinel_view(settings: Settings) -> SentinelView:
    """Ask every sentinel of REDIS_SENTINELS about REDIS_SENTINEL_MASTER."""
    view = SentinelView()
    name = settings.redis_sentinel_master
    for host, port in settings.sentinel_nodes:
        node = redis.Redis(host, port, decode_responses=True, **sentinel_kwargs(settings))
        try:
            state: Any = node.sentinel_master(name)
            replicas: Any = node.sentinel_slaves(name)
        except redis.RedisError as exc:
            view.unreachable.append(f"{host}:{port} ({exc})")
            continue
        finally:
            node.close()
        view.reachable.append(f"{host}:{port}")
        view.master = (state["ip"], int(state["port"]))
        view.quorum = int(state["quorum"])
        view.replicas = [(r["ip"], int(r["port"])) for r in replicas]
        view.healthy_replicas = sum(1 for r in replicas if _healthy(r))
    return view


def _healthy(replica: dict[str, Any]) -> bool:
    down = replica.get("is_sdown") or replica.get("is_odown") or replica.get("is_disconnected")
    return not down and replica.get("master-link-status") == "ok"


def _sentinel_finding(settings: Settings, view: SentinelView) -> Finding:
    if view.master is None:
        return Finding("Sentinel", False, "no sentinel answered: " + "; ".join(view.unreachable))
    master = f"{view.master[0]}:{view.master[1]}"
    detail = (
        f"master {settings.redis_sentinel_master!r} at {master}, "
        f"{view.healthy_replicas} of {len(view.replicas)} replica(s) in sync, quorum "
        f"{view.quorum}, {len(view.reachable)} of {len(settings.sentinel_nodes)} sentinels answer"
    )
    if view.unreachable:
        detail += f" (not: {'; '.join(view.unreachable)})"
    can_fail_over = view.healthy_replicas >= 1 and len(view.reachable) >= view.quorum
    if not can_fail_over:
        detail += ": no failover possible now"
    return Finding("Sentinel", can_fail_over, detail, advisory=True)


def _replica_finding(settings: Settings, replicas: int) -> Finding:
    if replicas:
        return Finding(
            "replicas",
            True,
            f"no Sentinel, {replicas} replica(s): a failover is manual (REDIS_SENTINELS)",
        )
    if settings.is_production:
        return Finding(
            "replicas",
            False,
            "neither Sentinel nor a replica: this one Redis is the single point of failure "
            "of payouts, sessions and locks (README: High availability)",
            advisory=True,
        )
    return Finding("replicas", True, "one Redis, no replica (a production stack needs them)")


def _redlock_finding(settings: Settings, view: SentinelView) -> Finding | None:
    if not settings.redlock_urls:
        return None
    nodes = [*view.replicas, *([view.master] if view.master else [])]
    group = set().union(*(_address(host, port) for host, port in nodes))
    masters = [(p.hostname, p.port or 6379) for p in map(urlsplit, settings.redlock_url_list)]
    shared = [f"{host}:{port}" for host, port in masters if host and _address(host, port) & group]
    if not shared:
        return Finding(
            "Redlock masters", True, "REDLOCK_URLS share no node with the Sentinel group"
        )
    return Finding(
        "Redlock masters",
        False,
        f"REDLOCK_URLS names nodes of the Sentinel group ({', '.join(shared)}): a replica is a "
        "copy of its master, not an independent master, so a lock can vanish in a failover; "
        "use masters outside the group",
        advisory=True,
    )


def _address(host: str, port: int) -> frozenset[tuple[str, int]]:
    """Every (IP, port) ``host`` resolves to, so a name and its address compare equal."""
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except OSError:
        return frozenset({(host, port)})
    return frozenset((str(info[4][0]), port) for info in infos)
