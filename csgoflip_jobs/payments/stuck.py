"""The stuck-withdrawal sweep: the database, not the queue, is the record of what is owed.

A withdrawal's job can be lost (an enqueue that failed after the commit, or a message a
killed worker had popped but not yet recorded). Running a withdrawal twice is safe
(lock, idempotency key, fenced writes), so the sweep drives each withdrawal still
unpaid after STUCK_WITHDRAWAL_AFTER_S again, through one sweep job per withdrawal
(``withdrawal:<id>:sweep``), left alone while it is queued or running.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from csgoflip_jobs import keys
from csgoflip_jobs.engine.job_queue import JobQueue
from csgoflip_jobs.payments.models import Withdrawal

WITHDRAWAL_PRIORITY = 1
"""A withdrawal's job runs at the highest priority."""

STUCK_WITHDRAWAL_AFTER_S = 300
"""A withdrawal still unpaid this long after its request is enqueued again."""

PAYABLE = ("pending", "processing")
"""States from which a withdrawal may still be paid (``processing``: a payout began)."""

log = logging.getLogger(__name__)


def requeue_stuck_withdrawals(
    sessions: sessionmaker[Session], queue: JobQueue, older_than_s: int
) -> list[int]:
    """Enqueue on ``queue`` again every withdrawal still unpaid ``older_than_s`` after its
    request; returns the ids enqueued."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than_s)
    with sessions() as session:
        stuck = session.execute(
            select(Withdrawal.id)
            .where(Withdrawal.status.in_(PAYABLE), Withdrawal.created_at <= cutoff)
            .order_by(Withdrawal.id)
        ).scalars()
        stuck_ids = list(stuck)
    requeued = [w for w in stuck_ids if _drive_again(queue, w)]
    if requeued:
        log.warning("re-enqueued %d stuck withdrawals: %s", len(requeued), requeued[:20])
    return requeued


def withdrawal_job_ids(withdrawal_id: int) -> tuple[str, str]:
    """The withdrawal's job and the stuck-withdrawal sweep's job for it."""
    main = keys.withdrawal_job_id(withdrawal_id)
    return main, f"{main}:sweep"


def _drive_again(queue: JobQueue, withdrawal_id: int) -> bool:
    job_id = withdrawal_job_ids(withdrawal_id)[1]
    job = queue.get_job(job_id)
    if job is not None and job.state not in ("completed", "failed"):
        return False  # still queued or running
    if job is not None:
        queue.remove(job_id)  # an earlier sweep's job
    queue.add(
        "process-withdrawal",
        {"withdrawal_id": withdrawal_id},
        priority=WITHDRAWAL_PRIORITY,
        job_id=job_id,
    )
    return True
