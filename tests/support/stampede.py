"""A child process for the cache-stampede test: several threads call cached() at once."""

from __future__ import annotations

import json
import sys
import threading
import time


def main(threads: int, start_at: float, key: str) -> None:
    """Wait for ``start_at``, then call cached() from ``threads`` threads; print results."""
    from csgoflip_jobs import CacheService
    from csgoflip_jobs.helpers.connection import broker_client

    cache = CacheService()
    results: list[object] = []

    def factory() -> dict[str, object]:
        broker_client().incr("test:factory-runs")
        time.sleep(0.2)
        return {"price": 1234, "computed_by": threading.get_ident()}

    def call() -> None:
        results.append(cache.cached(key, 60, factory))

    workers = [threading.Thread(target=call) for _ in range(threads)]
    time.sleep(max(0.0, start_at - time.time()))
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    print(json.dumps(results))


if __name__ == "__main__":
    main(int(sys.argv[1]), float(sys.argv[2]), sys.argv[3])
