"""Moving data written by earlier versions to today's key layout.

Before job ids were per queue, every job's record lived at ``csgoflip:job:<id>`` (and
its logs at ``csgoflip:job-logs:<id>``), whatever its queue. Today's scripts read a
job's record only under its queue (:func:`csgoflip_jobs.keys.job_key`): a job left
under the old name would be skipped as unknown when delivered, and a delayed one
dropped when due. Every worker therefore moves them before it takes its first message
(:func:`ensure_current_layout`), and ``csgoflip-jobs upgrade-keys`` does it on
demand; both are safe to run at any time, as often as wanted, beside running workers.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from itertools import islice

import redis

from csgoflip_jobs import keys
from csgoflip_jobs.engine import scripts
from csgoflip_jobs.helpers.connection import as_text

SCAN_BATCH = 1000
"""Keys asked for per SCAN call."""

MOVE_BATCH = 500
"""Records moved by one script call."""

log = logging.getLogger(__name__)


@dataclass
class KeyUpgrade:
    """What :func:`upgrade_job_keys` did."""

    moved: int = 0
    """Records moved to their queue's keys (their logs with them)."""
    taken: list[str] = field(default_factory=list)
    """Ids left under the legacy name: their queue has a job of that id already."""
    lost: list[str] = field(default_factory=list)
    """Ids left under the legacy name: the record names no queue (or is not a hash)."""

    @property
    def complete(self) -> bool:
        """True when nothing is left under a legacy name."""
        return not self.taken and not self.lost


def upgrade_job_keys(client: redis.Redis) -> KeyUpgrade:
    """Move every legacy job record (and its logs) to its queue's keys, then record
    that the data is in today's layout (when nothing was left behind)."""
    report = KeyUpgrade()
    found = client.scan_iter(match=f"{keys.LEGACY_JOB_KEY_PREFIX}*", count=SCAN_BATCH)
    while batch := [as_text(key) for key in islice(found, MOVE_BATCH)]:
        pipe = client.pipeline(transaction=False)
        for key in batch:
            pipe.exists(key)
            pipe.hget(key, "queue")
        replies = pipe.execute(raise_on_error=False)
        names: list[str] = []
        for key, exists, queue in zip(batch, replies[::2], replies[1::2], strict=True):
            job_id = key.removeprefix(keys.LEGACY_JOB_KEY_PREFIX)
            if exists == 0:
                continue  # removed since the SCAN saw it
            if queue is None or isinstance(queue, Exception):
                report.lost.append(job_id)
                continue
            queue = as_text(queue)
            legacy_logs = f"{keys.LEGACY_JOB_LOGS_KEY_PREFIX}{job_id}"
            names += [key, keys.job_key(queue, job_id), legacy_logs,
                      keys.job_logs_key(queue, job_id)]  # fmt: skip
        moved, taken = scripts.UPGRADE_KEYS(keys=[], args=names, client=client)
        report.moved += int(moved)
        report.taken += [as_text(k).removeprefix(keys.LEGACY_JOB_KEY_PREFIX) for k in taken]
    if report.complete:
        client.set(keys.LAYOUT_KEY, keys.LAYOUT_VERSION)
    return report


def ensure_current_layout(client: redis.Redis) -> KeyUpgrade | None:
    """Upgrade the layout unless the data says it is today's already (one GET); the
    report of the upgrade, or None when none was needed."""
    if as_text(client.get(keys.LAYOUT_KEY) or b"") == keys.LAYOUT_VERSION:
        return None
    report = upgrade_job_keys(client)
    if report.moved or not report.complete:
        log.warning(
            "moved %d job records to their queues' keys; left under the legacy name: %d "
            "whose queue has that id already %s, %d naming no queue %s",
            report.moved, len(report.taken), report.taken[:10], len(report.lost),
            report.lost[:10],
        )  # fmt: skip
    return report
