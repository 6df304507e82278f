"""What jobs cost the one Redis: its CPU time, and the commands clients send it.

* :func:`cpu_seconds`: the server's user + system CPU (INFO cpu); a delta over a run
  divided by its jobs is ``redis_cpu_us_per_job``. When workers scale out over many
  hosts the one Redis is what saturates, so this is the platform's ceiling.
* :func:`top_level_commands` counts, with MONITOR, the commands clients send while
  ``run`` runs (the commands scripts call inside Redis are not counted). Each is at
  most one round trip (pipelined commands share one, so this is an upper bound). The
  benchmark's own polling of ``bench:done`` and the jobs' own INCR of it are left out:
  they are the harness and the job, not the platform. They are counted by command
  name (``EVALSHA <sha>`` for a script), so a caller can tell enqueueing from
  processing.
"""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import redis

HARNESS = ("GET bench:done", "INCR bench:done", "INCRBY bench:done")
STOP = "PING bench:monitor-stop"


def cpu_seconds(client: redis.Redis) -> float:
    """The Redis server's CPU time so far, user + system, in seconds."""
    info = client.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def top_level_commands(url: str, run: Callable[[], object]) -> Counter[str]:
    """The commands clients sent Redis while ``run()`` ran, by name (scripts' own calls,
    the harness's polling and the jobs' counter excluded)."""
    counted: Counter[str] = Counter()
    watcher = redis.Redis.from_url(url)
    ready = threading.Event()

    def watch() -> None:
        with watcher.monitor() as monitor:
            ready.set()
            while True:
                command: dict[str, Any] = monitor.next_command()
                text = str(command["command"])
                if text == STOP:
                    return
                if command.get("client_type") == "lua" or text.startswith(HARNESS):
                    continue
                words = text.split(maxsplit=2)
                counted[" ".join(words[:2]) if words[0] == "EVALSHA" else words[0]] += 1

    reader = threading.Thread(target=watch, daemon=True)
    reader.start()
    ready.wait(10)
    try:
        run()
    finally:
        stopper = redis.Redis.from_url(url)
        stopper.execute_command(*STOP.split())
        stopper.close()
        reader.join(60)
    return counted
