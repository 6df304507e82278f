"""Every Redis key name the platform uses, in one place (tunables live with their code).

Keys of Celery and kombu themselves (``celery-task-meta-<id>``, ``unacked``, the
queue lists) are named here too, so the scripts and the monitoring agree with them.

The web app and the Node services before it read and write these directly; they
are part of the public contract and never change: ``session:<id>``,
``user:<id>:sessions``, ``cache:<key>``, ``ratelimit:<key>``, the lock resource names
``user:<id>:balance`` and ``withdrawal:<id>:process`` (each locked under its own key,
:func:`lock_key`, so no lock can touch a queue, session, cache or job key), the pub/sub
channels ``notifications:user:<id>`` and ``notifications:broadcast`` (with their
``:recent`` lists; channels are server-wide, so outside database 0 they carry a
namespace, :func:`user_channel`), and the job ids ``withdrawal:<id>`` and
``deposit:<id>``.
"""

from __future__ import annotations

PREFIX = "csgoflip"

# --- job records ----------------------------------------------------------------
# A job id is unique within its queue (as in BullMQ): every key of a job carries its
# queue. Celery's task ids must be unique across queues, so a job given its own id is
# the Celery task ``<queue>:<job id>`` (:func:`task_id_for`); any other job's task id is
# its job id.

CELERY_RESULT_KEY_PREFIX = "celery-task-meta-"
"""Celery's Redis result backend stores each task's result under this prefix."""


def job_key_prefix(queue: str) -> str:
    """What a job id is appended to for its record's key (the scripts build keys so)."""
    return queue_key(queue, "job:")


def job_logs_key_prefix(queue: str) -> str:
    """What a job id is appended to for its logs' key."""
    return queue_key(queue, "job-logs:")


def job_key(queue: str, job_id: str) -> str:
    """Hash holding one job's record: name, queue, data, opts, timestamps, state, result
    or error, and ``task_id`` when its Celery task id is not its job id."""
    return f"{job_key_prefix(queue)}{job_id}"


def job_logs_key(queue: str, job_id: str) -> str:
    """List of the lines a job's task logged, oldest first (capped)."""
    return f"{job_logs_key_prefix(queue)}{job_id}"


def result_key(task_id: str) -> str:
    """Celery's stored result of a task."""
    return f"{CELERY_RESULT_KEY_PREFIX}{task_id}"


def task_id_for(queue: str, job_id: str) -> str:
    """The Celery task id of a job added with its own ``job_id`` on ``queue``."""
    return f"{queue}:{job_id}"


LEGACY_JOB_KEY_PREFIX = f"{PREFIX}:job:"
"""Where job records were kept before job ids were per queue (``csgoflip:job:<id>``);
``csgoflip-jobs upgrade-keys`` (and every worker at start) moves them."""

LEGACY_JOB_LOGS_KEY_PREFIX = f"{PREFIX}:job-logs:"
"""Where job logs were kept before job ids were per queue."""

LAYOUT_KEY = f"{PREFIX}:layout"
"""The version of the key layout the data is in (absent: the legacy layout, or none)."""

LAYOUT_VERSION = "2"
"""The key layout this code reads and writes: jobs per queue."""


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
def broadcast_channel(namespace: str) -> str:
    """Pub/sub channel of site-wide events. Channels are server-wide (databases do not
    separate them): ``namespace`` (Settings.channel_namespace) keeps environments that
    share a Redis server apart."""
    return f"{namespace}notifications:broadcast"


def user_channel(namespace: str, user_id: int) -> str:
    """Pub/sub channel of one user's live events (``namespace`` as for
    :func:`broadcast_channel`)."""
    return f"{namespace}notifications:user:{user_id}"


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


def session_ticket_key(ticket: str) -> str:
    """A single-use ticket standing for a session for a few seconds (its value: the
    session id), so that no session id has to go into a URL."""
    return f"{PREFIX}:session-ticket:{ticket}"


def sessions_ended_channel(namespace: str) -> str:
    """Pub/sub channel told the fingerprint of every session that ends (sign-out), so
    the live sockets it opened close (``namespace`` as for :func:`broadcast_channel`)."""
    return f"{namespace}sessions:ended"


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
    """The Redlock key of a resource: under a prefix of its own, so a resource named like
    a queue, session or job key (``lock("email")``) can never overwrite that key."""
    return f"{PREFIX}:lock:{resource}"


def fence_key(resource: str) -> str:
    """Counter behind a resource's fencing tokens (expires FENCE_TTL_S after its last use)."""
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


FLOWER_TOKENS_KEY = f"{PREFIX}:flower:tokens"
"""Hash of Flower API tokens: the SHA-256 of each token -> JSON {name, read_only}."""

DEAD_LETTERS_KEY = f"{PREFIX}:dead-letters"
"""List of messages a worker could not even parse (JSON with reason and time), newest first."""


# --- kombu's own keys (Redis transport defaults) ---------------------------------
KOMBU_PRIORITY_SEP = "\x06\x16"
KOMBU_UNACKED_KEY = "unacked"
KOMBU_UNACKED_INDEX_KEY = "unacked_index"


def priority_list_key(queue: str, level: int) -> str:
    """The kombu list holding a queue's messages of one priority level."""
    return f"{queue}{KOMBU_PRIORITY_SEP}{level}" if level else queue
