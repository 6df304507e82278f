"""Counting the Redis commands real workers send per job (MONITOR)."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import redis

from csgoflip_jobs import JobQueue, keys
from csgoflip_jobs.engine import scripts
from tests.support.polling import wait_until


@contextmanager
def monitored(redis_url: str) -> Iterator[list[str]]:
    """The commands clients send the test database while the block runs (scripts'
    own calls left out)."""
    watcher = redis.Redis.from_url(redis_url)
    db = int(watcher.connection_pool.connection_kwargs.get("db", 0))
    seen: list[str] = []
    ready = threading.Event()

    def watch() -> None:
        with watcher.monitor() as monitor:
            ready.set()
            while (command := monitor.next_command())["command"] != "PING monitor-stop":
                if command.get("client_type") != "lua" and int(command.get("db", -1)) == db:
                    seen.append(str(command["command"]))

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    assert ready.wait(10)
    try:
        yield seen
    finally:
        redis.Redis.from_url(redis_url).execute_command("PING", "monitor-stop")
        reader.join(30)


def kinds(commands: list[str]) -> Counter[str]:
    """The commands by what they do for a job."""
    names = {scripts.DELIVER.sha: "DELIVER", scripts.START.sha: "START",
             scripts.FINISH.sha: "FINISH"}  # fmt: skip
    counted: Counter[str] = Counter()
    for command in commands:
        words = command.split()
        if words[0] == "EVALSHA" and words[1] in names:
            counted[names[words[1]]] += 1
        elif words[0] == "PUBLISH" and "celeryev/task" in words[1]:
            counted["task events"] += 1
        elif words[0] == "MULTI" or (words[0] in ("ZREM", "HDEL") and "unacked" in words[1]):
            counted["acks"] += 1
    return counted


def commands_for_jobs(
    queue: JobQueue,
    runs: Callable[[], list[dict[str, Any]]],
    redis_url: str,
    count: int,
) -> tuple[Counter[str], list[str]]:
    """Run ``count`` test-record jobs through the worker already consuming ``queue``
    (after one warm-up job) and count, by :func:`kinds`, what clients sent while they
    ran, until every one ran and no unacked entry is left; also their ids."""
    client = redis.Redis.from_url(redis_url)
    queue.add("test-record", {"n": -1})  # the worker is up and its scripts loaded
    wait_until(lambda: len(runs()) == 1 and queue.get_job_counts()["completed"] == 1, 20)
    with monitored(redis_url) as commands:
        ids = queue.add_bulk([{"name": "test-record", "data": {"n": n}} for n in range(count)])
        wait_until(lambda: queue.get_job_counts()["active"] == 0 and len(runs()) == count + 1, 60)
        wait_until(lambda: client.hlen(keys.KOMBU_UNACKED_KEY) == 0, 5)
    client.close()
    return kinds(commands), ids
