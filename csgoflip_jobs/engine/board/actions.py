"""The operators' actions of the Jobs board, each one call on a JobQueue.

A job action that its job's state does not allow raises
:class:`~csgoflip_jobs.engine.errors.JobStateError` saying why (the page shows it, the
API answers 409); an unknown queue, job or action raises
:class:`~csgoflip_jobs.engine.board.errors.NotFoundError`; bad form values raise
:class:`~csgoflip_jobs.engine.errors.JobOptionsError`. Nothing else is changed then.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from csgoflip_jobs.engine.board.errors import NotFoundError
from csgoflip_jobs.engine.board.pages import JobsBoard
from csgoflip_jobs.engine.errors import JobOptionsError, JobStateError
from csgoflip_jobs.engine.job_queue import JobQueue
from csgoflip_jobs.engine.options import MAX_DELAY_MS

log = logging.getLogger(__name__)

JOB_ACTIONS = ("retry", "remove", "promote")
QUEUE_ACTIONS = ("retry-failed", "pause", "resume", "clean")
DROPS_DATA = frozenset({"remove", "clean"})
"""Actions that delete jobs; the pages ask for a confirmation first."""

CLEAN_STATES = ("completed", "failed")
RETRY_ALL_LIMIT = 1000
"""Failed jobs one "retry all" enqueues again (the newest; as ``retry-failed``'s default)."""
CLEAN_LIMIT = 10_000
"""Jobs one clean removes at most."""
MAX_CLEAN_MINUTES = MAX_DELAY_MS // 60_000
"""``minutes`` of a clean at most: the longest grace ``clean`` takes (10 years)."""


@dataclass(frozen=True)
class Outcome:
    """What an action did, in a sentence; ``job_gone`` when its job no longer exists."""

    message: str
    job_gone: bool = False


def run_job_action(
    board: JobsBoard, queue_name: str, job_id: str, action: str, actor: str
) -> Outcome:
    """Retry a failed job, remove a job that is not running, or promote a delayed one;
    the audit line names ``actor``."""
    if action not in JOB_ACTIONS:
        raise NotFoundError(f"no job action {action!r}; they are {', '.join(JOB_ACTIONS)}")
    job = board.job(queue_name, job_id)
    queue = board.queue(queue_name)
    if action == "retry":
        _require(job.state, job_id, "failed", "only a failed job is retried")
        queue.retry_failed(job)
        outcome = Outcome(f"job {job_id} is waiting to run again")
    elif action == "remove":
        if not queue.remove(job_id):
            raise JobStateError(f"job {job_id} is running (active): a running job is not removed")
        outcome = Outcome(f"job {job_id} was removed", job_gone=True)
    else:
        _require(job.state, job_id, "delayed", "only a delayed job is promoted")
        if not queue.promote(job_id):
            raise JobStateError(f"job {job_id} is no longer delayed")
        outcome = Outcome(f"job {job_id} is waiting now")
    log.info("jobs board: %s %s of %s by %s: %s", action, job_id, queue_name, actor,
             outcome.message)  # fmt: skip
    return outcome


def run_queue_action(
    board: JobsBoard, queue_name: str, action: str, form: Mapping[str, str], actor: str
) -> Outcome:
    """Retry every failed job, pause, resume, or clean finished jobs older than
    ``form["minutes"]`` in ``form["state"]`` (completed or failed); the audit line names
    ``actor``."""
    actions: dict[str, Callable[[JobQueue, Mapping[str, str]], Outcome]] = {
        "retry-failed": _retry_all,
        "pause": _pause,
        "resume": _resume,
        "clean": _clean,
    }
    if action not in actions:
        raise NotFoundError(f"no queue action {action!r}; they are {', '.join(QUEUE_ACTIONS)}")
    outcome = actions[action](board.queue(queue_name), form)
    log.info("jobs board: %s of %s by %s: %s", action, queue_name, actor, outcome.message)
    return outcome


def _require(state: str, job_id: str, wanted: str, rule: str) -> None:
    if state != wanted:
        raise JobStateError(f"job {job_id} is {state}, not {wanted}: {rule}")


def _retry_all(queue: JobQueue, _: Mapping[str, str]) -> Outcome:
    failed = queue.get_failed(0, RETRY_ALL_LIMIT - 1)
    for job in failed:
        queue.retry_failed(job)
    left = queue.get_job_counts()["failed"]
    more = f"; {left} failed jobs are left, retry again for them" if left else ""
    return Outcome(f"{len(failed)} failed jobs of {queue.name} are waiting to run again{more}")


def _pause(queue: JobQueue, _: Mapping[str, str]) -> Outcome:
    changed = queue.pause()
    return Outcome(f"{queue.name} is paused" + ("" if changed else " (it already was)"))


def _resume(queue: JobQueue, _: Mapping[str, str]) -> Outcome:
    changed = queue.resume()
    return Outcome(f"{queue.name} is running" + ("" if changed else " (it was not paused)"))


def _clean(queue: JobQueue, form: Mapping[str, str]) -> Outcome:
    state = form.get("state", "")
    if state not in CLEAN_STATES:
        raise JobOptionsError(f"clean takes state completed or failed, not {state!r}")
    minutes_text = form.get("minutes", "").strip()
    digits_ok = minutes_text.isdigit() and len(minutes_text) <= len(str(MAX_CLEAN_MINUTES))
    if not digits_ok or int(minutes_text) > MAX_CLEAN_MINUTES:
        raise JobOptionsError(
            f"minutes must be a whole number up to {MAX_CLEAN_MINUTES}, not {minutes_text!r}"
        )
    minutes = int(minutes_text)
    removed = queue.clean(minutes * 60_000, CLEAN_LIMIT, state)
    return Outcome(
        f"removed {len(removed)} {state} jobs of {queue.name} older than {minutes} minutes"
    )
