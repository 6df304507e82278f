"""The enqueuing process of the failover tests, run as
``python -m tests.support.failover_enqueuer JOURNAL RUNS TOTAL RATE``.

It adds ``test-record-file`` jobs 0..TOTAL-1 (job ids ``ha-<n>``) at about RATE jobs a
second, in batches of ten: even batches with one ``add_bulk``, odd ones with an ``add``
per job. A job counts as accepted when its call returned; a call that raised is made
again with the same job ids, as the platform's errors say is safe, until it is
accepted. It keeps one JobQueue (one client) for the whole run, so it reconnects by
itself or not at all. Each line of JOURNAL is one JSON event:

* ``{"try": [n, ...], "at": t}``: a call is about to be made for these jobs;
* ``{"accepted": [n, ...], "at": t}``: it returned;
* ``{"error": "BrokerNotReplicatedError", "message": ..., "at": t}``: it raised.
"""

from __future__ import annotations

import json
import sys
import time
from typing import IO, Any

import tests.support.jobs  # noqa: F401 - registers test-record-file
from csgoflip_jobs import BrokerError, JobQueue

BATCH = 10


def job(n: int, runs: str) -> dict[str, Any]:
    """The add_bulk entry of job ``n``."""
    return {
        "name": "test-record-file",
        "data": {"n": n, "log": runs},
        "opts": {"job_id": f"ha-{n}"},
    }


def note(journal: IO[str], **event: Any) -> None:
    """Append one event, flushed at once (the test reads the journal while it runs)."""
    journal.write(json.dumps({**event, "at": time.time()}) + "\n")
    journal.flush()


def add_until_accepted(
    queue: JobQueue, journal: IO[str], ns: list[int], runs: str, bulk: bool
) -> None:
    """Add jobs ``ns`` (one add_bulk, or an add each), again and again until accepted."""
    pending = [ns] if bulk else [[n] for n in ns]
    for part in pending:
        while True:
            note(journal, **{"try": part})
            try:
                if bulk:
                    queue.add_bulk([job(n, runs) for n in part])
                else:
                    entry = job(part[0], runs)
                    queue.add(entry["name"], entry["data"], job_id=entry["opts"]["job_id"])
            except BrokerError as exc:
                note(journal, error=type(exc).__name__, message=str(exc)[:400])
                time.sleep(0.05)
                continue
            note(journal, accepted=part)
            break


def main(journal_path: str, runs: str, total: int, rate: float) -> None:
    """Enqueue every job, paced at ``rate`` jobs a second."""
    queue = JobQueue("notification")
    started = time.monotonic()
    with open(journal_path, "a") as journal:
        for index, first in enumerate(range(0, total, BATCH)):
            add_until_accepted(
                queue, journal, list(range(first, min(total, first + BATCH))), runs, index % 2 == 0
            )
            ahead = started + (first + BATCH) / rate - time.monotonic()
            if ahead > 0:
                time.sleep(ahead)
        note(journal, done=total)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4]))
