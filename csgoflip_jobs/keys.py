"""Every Redis key name and TTL the platform uses, in one place.

Units are part of the names (``_S`` seconds, ``_MS`` milliseconds). Keys of
Celery and kombu themselves (``celery-task-meta-<id>``, ``unacked``, the queue
lists) are named here too, so the retention and monitoring code agree with them.
"""

from __future__ import annotations

PREFIX = "csgoflip"

# --- BullMQ-compatible job defaults -------------------------------------------
DEFAULT_ATTEMPTS = 3
DEFAULT_BACKOFF_TYPE = "exponential"
DEFAULT_BACKOFF_DELAY_MS = 1000
DEFAULT_KEEP_COMPLETED = 100
DEFAULT_KEEP_FAILED = 1000
MAX_PRIORITY_LEVEL = 9
"""kombu's Redis transport keeps one list per level 0-9; 0 is popped first."""

# --- job records ----------------------------------------------------------------
JOB_KEY_PREFIX = f"{PREFIX}:job:"
"""Hash per job: name, queue, data, opts, timestamps, state, result or error."""

CELERY_RESULT_KEY_PREFIX = "celery-task-meta-"
"""Celery's Redis result backend stores each task's result under this prefix."""

STACKTRACE_MAX_CHARS = 4000
"""Longest traceback kept on a failed job, so 1000 failed jobs stay small."""


def job_key(job_id: str) -> str:
    """Hash holding one job's record."""
    return f"{JOB_KEY_PREFIX}{job_id}"


def queue_key(queue: str, suffix: str) -> str:
    """Per-queue bookkeeping key: delayed, active, completed, failed, wake, ready."""
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


# --- notifications ---------------------------------------------------------------
NOTIFICATIONS_KEEP = 50
"""Newest notifications kept per user, for clients that reconnect."""

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
SESSION_TTL_S = 7 * 24 * 3600
"""A session lives 7 days after its last validation."""

SESSION_ID_BYTES = 32
"""Random bytes in a session id (256 bits, from ``secrets``)."""


def session_key(session_id: str) -> str:
    """String holding one session's JSON (userId, createdAt, expiresAt, metadata, lastActivity)."""
    return f"session:{session_id}"


def user_sessions_key(user_id: int | str) -> str:
    """Set of a user's session ids."""
    return f"user:{user_id}:sessions"


# --- cache ---------------------------------------------------------------------------
CACHE_PREFIX = "cache:"
CACHE_DEFAULT_TTL_S = 300
CACHE_FILL_LOCK_TTL_MS = 10_000
"""Longest one caller may hold the right to fill a cold key before others take over."""
CACHE_FILL_POLL_S = 0.01
"""How often callers waiting for another process's fill look for the value."""
SCAN_BATCH = 500
"""Keys per SCAN step and per UNLINK when invalidating a pattern."""


def cache_key(key: str) -> str:
    """Where a cached value lives."""
    return f"{CACHE_PREFIX}{key}"


def cache_fill_lock_key(key: str) -> str:
    """Held by the one caller computing a cold key's value."""
    return f"{PREFIX}:cache-fill:{key}"


# --- locks -----------------------------------------------------------------------------
def lock_key(resource: str) -> str:
    """The Redlock key of a resource (the resource name itself, as node-redlock does)."""
    return resource


REDLOCK_DRIFT_FACTOR = 0.01
REDLOCK_RETRY_COUNT = 10
REDLOCK_RETRY_DELAY_MS = 200
REDLOCK_RETRY_JITTER_MS = 200
REDLOCK_AUTOMATIC_EXTENSION_THRESHOLD_MS = 500
REDLOCK_MASTER_TIMEOUT_S = 0.5
"""A lock master that does not answer within this counts as failed for that attempt."""


def fence_key(resource: str) -> str:
    """Counter behind a resource's fencing tokens."""
    return f"{PREFIX}:fence:{resource}"


# --- payments ------------------------------------------------------------------------
BALANCE_LOCK_MS = 5000
"""Lock on a user's balance; extended automatically while held."""

WITHDRAWAL_LOCK_MS = 5000
"""Lock on one withdrawal while it is paid; a dead holder's lock frees after this."""

WITHDRAWAL_DELAY_MS = 5000
WITHDRAWAL_PRIORITY = 1
"""As the original scheduled withdrawals: 5 s delay, the highest priority."""


STUCK_WITHDRAWAL_AFTER_S = 300
"""A withdrawal still pending this long after its request is enqueued again."""

STUCK_WITHDRAWAL_SWEEP_S = 60
"""How often beat runs the stuck-withdrawal sweep."""


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

EMAIL_RATE_MARGIN_MS = 50
"""Added to the email window, so the send after a full window lands past it at the server
even when one SMTP conversation took longer than another."""


# --- rate limits ------------------------------------------------------------------------
def rate_limit_key(key: str) -> str:
    """Counter of one fixed window."""
    return f"ratelimit:{key}"


# --- operations --------------------------------------------------------------------------
STATS_SNAPSHOTS_KEY = f"{PREFIX}:stats:snapshots"
"""List of RedisMonitor snapshots (JSON), newest first."""

STATS_SNAPSHOTS_KEEP = 1440
"""A day of one-minute snapshots."""

SESSION_PRUNE_INTERVAL_S = 3600
"""How often beat prunes expired ids from every user's session set."""

BEAT_KEY_PREFIX = f"{PREFIX}:beat:"
"""celery-redbeat's keys: the schedule and the lock that lets one beat run at a time."""


DEAD_LETTERS_KEY = f"{PREFIX}:dead-letters"
"""List of messages a worker could not even parse (JSON with reason and time), newest first."""

DEAD_LETTERS_KEEP = 1000


# --- kombu's own keys (Redis transport defaults) ---------------------------------
KOMBU_PRIORITY_SEP = "\x06\x16"
KOMBU_UNACKED_KEY = "unacked"
KOMBU_UNACKED_INDEX_KEY = "unacked_index"

# --- worker timing -----------------------------------------------------------------
HEARTBEAT_INTERVAL_S = 5.0
"""How often a worker refreshes the unacked-index score of the jobs it holds
(at most a third of the visibility timeout, see ``heartbeat_interval_s``)."""

UNACKED_RESTORE_INTERVAL_S = 5
"""How often a worker sweeps for jobs whose holder stopped heart-beating."""

HAND_BACK_PAUSE_S = 1.0
"""Pause before a worker hands back a job it could not mark started (Redis failing)."""

RESULT_STORE_RETRY_S = 60.0
"""How long a worker keeps retrying to store a finished job's outcome while Redis is down."""

SCHEDULER_MAX_SLEEP_S = 1.0
"""Longest a worker's delayed-job scheduler sleeps between checks."""

SCHEDULER_BATCH = 500
"""Most delayed jobs moved to their queue by one scheduler step."""


def priority_list_key(queue: str, level: int) -> str:
    """The kombu list holding a queue's messages of one priority level."""
    return f"{queue}{KOMBU_PRIORITY_SEP}{level}" if level else queue
