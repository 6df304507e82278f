"""Every Redis key name the platform uses, in one place (tunables live with their code).

Keys of Celery and kombu themselves (``celery-task-meta-<id>``, ``unacked``, the
queue lists) are named here too, so the scripts and the monitoring agree with them.

The web app and the Node services before it read and write these directly; they
are part of the public contract and never change: ``session:<id>``,
``user:<id>:sessions``, ``cache:<key>``, ``ratelimit:<key>``, the lock names
``user:<id>:balance`` and ``withdrawal:<id>:process``, the pub/sub channels
``notifications:user:<id>`` and ``notifications:broadcast`` (with their ``:recent``
lists), and the job ids ``withdrawal:<id>`` and ``deposit:<id>``.
"""

from __future__ import annotations

PREFIX = "csgoflip"

# --- job records ----------------------------------------------------------------
JOB_KEY_PREFIX = f"{PREFIX}:job:"
"""Hash per job: name, queue, data, opts, timestamps, state, result or error."""

CELERY_RESULT_KEY_PREFIX = "celery-task-meta-"
"""Celery's Redis result backend stores each task's result under this prefix."""

JOB_LOGS_KEY_PREFIX = f"{PREFIX}:job-logs:"
"""List per job of the lines its task logged, oldest first (capped)."""


def job_key(job_id: str) -> str:
    """Hash holding one job's record."""
    return f"{JOB_KEY_PREFIX}{job_id}"


def result_key(job_id: str) -> str:
    """Celery's stored result of a job."""
    return f"{CELERY_RESULT_KEY_PREFIX}{job_id}"


def job_logs_key(job_id: str) -> str:
    """A job's log lines (a key of its own: job ids may contain ':')."""
    return f"{JOB_LOGS_KEY_PREFIX}{job_id}"


def queue_key(queue: str, suffix: str) -> str:
    """Per-queue bookkeeping key: delayed, active, completed, failed, wake, ready,
    paused, events, metrics."""
    return f"{PREFIX}:queue:{queue}:{suffix}"


def delayed_key(queue: str) -> str:
    """Sorted set of delayed job ids, scored by the Unix time (ms) they are due."""
    return queue_key(queue, "delayed")


def wake_key(queue: str) -> str:
    """List a scheduler blocks on, pushed when a new delayed job arrives."""
    return queue_key(queue, "wake")


def ready_key(queue: str) -> str:
    """List of wake-up signals, one pushed per message put on the queue's lists.

    Idle workers block on it (BRPOP) instead of on the messages themselves, then
    take the message with the ``DELIVER`` script, which records it as unacked in
    the same atomic step (see :mod:`csgoflip_jobs.engine.celery_ext.transport`).
    """
    return queue_key(queue, "ready")


def active_key(queue: str) -> str:
    """Set of job ids a worker has started and not yet finished."""
    return queue_key(queue, "active")


def completed_key(queue: str) -> str:
    """Sorted set of completed job ids, scored by finish time in microseconds."""
    return queue_key(queue, "completed")


def failed_key(queue: str) -> str:
    """Sorted set of failed job ids, scored by finish time in microseconds."""
    return queue_key(queue, "failed")


def paused_key(queue: str) -> str:
    """Set while the queue is paused: no worker starts its jobs."""
    return queue_key(queue, "paused")


def events_key(queue: str) -> str:
    """Stream of the queue's job events (added, waiting, active, completed, ...)."""
    return queue_key(queue, "events")


def metrics_key(queue: str, kind: str) -> str:
    """List of jobs ``kind`` (completed or failed) per past minute, newest first."""
    return queue_key(queue, f"metrics:{kind}")


def metrics_meta_key(queue: str, kind: str) -> str:
    """Hash beside :func:`metrics_key`: the current minute, its count so far, the total."""
    return queue_key(queue, f"metrics:{kind}:meta")


REPLICATION_BARRIER_CHANNEL = f"{PREFIX}:replication-barrier"
"""Channel nobody listens on: a durable enqueue PUBLISHes to it right before WAIT, a
write that always reaches the replicas, so WAIT also covers a job that existed already
(its ENQUEUE wrote nothing on this connection)."""

# --- notifications ---------------------------------------------------------------
BROADCAST_CHANNEL = "notifications:broadcast"
"""Pub/sub channel of site-wide events."""


def user_channel(user_id: int) -> str:
    """Pub/sub channel of one user's live events."""
    return f"notifications:user:{user_id}"


def user_recent_key(user_id: int) -> str:
    """List of a user's newest notifications (JSON), newest first."""
    return f"notifications:user:{user_id}:recent"


BROADCAST_RECENT_KEY = "notifications:broadcast:recent"
"""List of the newest site-wide notifications (JSON), newest first."""


# --- sessions ------------------------------------------------------------------------
def session_key(session_id: str) -> str:
    """String holding one session's JSON (userId, createdAt, expiresAt, metadata, lastActivity)."""
    return f"session:{session_id}"


def user_sessions_key(user_id: int | str) -> str:
    """Set of a user's session ids."""
    return f"user:{user_id}:sessions"


# --- cache ---------------------------------------------------------------------------
CACHE_PREFIX = "cache:"


def cache_key(key: str) -> str:
    """Where a cached value lives."""
    return f"{CACHE_PREFIX}{key}"


def cache_fill_lock_key(key: str) -> str:
    """Held by the one caller computing a cold key's value."""
    return f"{PREFIX}:cache-fill:{key}"


# --- locks -----------------------------------------------------------------------------
def lock_key(resource: str) -> str:
    """The Redlock key of a resource: the resource name itself."""
    return resource


def fence_key(resource: str) -> str:
    """Counter behind a resource's fencing tokens."""
    return f"{PREFIX}:fence:{resource}"


# --- payments ------------------------------------------------------------------------
def balance_lock(user_id: int) -> str:
    """Lock held around every change of a user's balance."""
    return f"user:{user_id}:balance"


def withdrawal_lock(withdrawal_id: int) -> str:
    """Lock held while one withdrawal is paid or failed."""
    return f"withdrawal:{withdrawal_id}:process"


def withdrawal_job_id(withdrawal_id: int) -> str:
    """Job id and payout idempotency key of a withdrawal: one of each per withdrawal."""
    return f"withdrawal:{withdrawal_id}"


def deposit_job_id(deposit_id: int) -> str:
    """Job id of a deposit's confirmation."""
    return f"deposit:{deposit_id}"


# --- email -----------------------------------------------------------------------------
EMAIL_RATE_KEY = "email:global"
"""The sliding-window log shared by every email worker (under ``ratelimit:``)."""


# --- rate limits ------------------------------------------------------------------------
def rate_limit_key(key: str) -> str:
    """Counter of one fixed window."""
    return f"ratelimit:{key}"


# --- operations --------------------------------------------------------------------------
STATS_SNAPSHOTS_KEY = f"{PREFIX}:stats:snapshots"
"""List of RedisMonitor snapshots (JSON), newest first."""


BEAT_KEY_PREFIX = f"{PREFIX}:beat:"
"""celery-redbeat's keys: the schedule and the lock that lets one beat run at a time."""


DEAD_LETTERS_KEY = f"{PREFIX}:dead-letters"
"""List of messages a worker could not even parse (JSON with reason and time), newest first."""


# --- kombu's own keys (Redis transport defaults) ---------------------------------
KOMBU_PRIORITY_SEP = "\x06\x16"
KOMBU_UNACKED_KEY = "unacked"
KOMBU_UNACKED_INDEX_KEY = "unacked_index"


def priority_list_key(queue: str, level: int) -> str:
    """The kombu list holding a queue's messages of one priority level."""
    return f"{queue}{KOMBU_PRIORITY_SEP}{level}" if level else queue
