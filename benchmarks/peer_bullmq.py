"""bullmq-python on a given Redis, for :mod:`benchmarks.throughput_bench` (PEERS_PYTHON).

    $PEERS_PYTHON benchmarks/peer_bullmq.py enqueue redis://127.0.0.1:PORT/0 5000 [bulk]
    $PEERS_PYTHON benchmarks/peer_bullmq.py worker redis://127.0.0.1:PORT/0

Run by a separate interpreter that has bullmq installed (see ../shared/peers), so it
imports nothing of this project. The jobs are the peers harness's: a no-op that INCRs
``bench:done``, kept as BullMQ keeps them (newest 100 completed, 1000 failed), single
``add`` calls, a worker of concurrency 10. ``enqueue ... bulk`` also times ``addBulk``
(1000 a call) into a queue no worker reads. ``enqueue`` prints one JSON line.
"""

import asyncio
import json
import signal
import sys
import time

QUEUE = "bench"
BULK_QUEUE = "bench-bulk"
BULK_BATCH = 1000
KEEP = {"removeOnComplete": 100, "removeOnFail": 1000}


async def enqueue(url: str, count: int, bulk: bool) -> None:
    from bullmq import Queue  # type: ignore[import-not-found]  # in PEERS_PYTHON only

    queue = Queue(QUEUE, {"connection": url})
    await queue.add("noop", {"i": -1}, KEEP)  # scripts loaded, connection up
    started = time.perf_counter()
    for i in range(count):
        await queue.add("noop", {"i": i}, KEEP)
    elapsed = time.perf_counter() - started
    await queue.close()
    figures = {"enqueue_single_jobs_per_s": round(count / elapsed, 1)}
    if bulk:
        figures["enqueue_bulk_jobs_per_s"] = await enqueue_bulk(url, count)
    print(json.dumps(figures))


async def enqueue_bulk(url: str, count: int) -> float:
    from bullmq import Queue

    bulk_queue = Queue(BULK_QUEUE, {"connection": url})
    await bulk_queue.addBulk([{"name": "noop", "data": {"i": -1}, "opts": KEEP}])
    started = time.perf_counter()
    for first in range(0, count, BULK_BATCH):
        batch = range(first, min(count, first + BULK_BATCH))
        await bulk_queue.addBulk([{"name": "noop", "data": {"i": i}, "opts": KEEP} for i in batch])
    elapsed = time.perf_counter() - started
    await bulk_queue.close()
    return round(count / elapsed, 1)


async def work(url: str) -> None:
    import redis.asyncio as aioredis
    from bullmq import Worker

    counter = aioredis.Redis.from_url(url)

    async def process(job: object, token: object) -> None:
        await counter.incr("bench:done")

    worker = Worker(QUEUE, process, {"connection": url, "concurrency": 10})
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await worker.close()


if __name__ == "__main__":
    if sys.argv[1] == "enqueue":
        asyncio.run(enqueue(sys.argv[2], int(sys.argv[3]), sys.argv[4:] == ["bulk"]))
    else:
        asyncio.run(work(sys.argv[2]))
