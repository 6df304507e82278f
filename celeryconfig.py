"""Every Celery setting of the platform, derived from csgoflip_jobs.settings.

Why each non-default value is what it is:

* JSON only: pickle is never accepted, so a message cannot run code on a worker.
* ``task_acks_late`` + ``task_reject_on_worker_lost``: a job is acknowledged
  after it finishes; if its worker dies the message goes back to the queue.
* ``visibility_timeout`` (30 s) with a 5 s heartbeat and a 5 s restore sweep:
  a job whose worker was killed with kill -9 runs again within about 40 s.
  Live workers refresh the timestamp of every job they hold every 5 s
  (csgoflip_jobs.engine.celery_ext.job_keeper), so a job running longer than 30 s is never
  handed to a second worker.
* ``priority_steps`` 0-9: ten lists per queue; 0 (no priority) is popped first,
  BullMQ priority p maps to min(p, 9), so 1 is the highest given priority.
* Task events on (sent, received, started, succeeded, ...) for Flower.
* ``result_expires`` None: results are trimmed by count, never by time
  (csgoflip_jobs.engine.celery_ext.result_backend).
* With REDIS_SENTINELS, the broker, the result backend and beat find the master
  through the sentinels (csgoflip_jobs.engine.celery_ext.sentinel), with the
  platform's timeouts on the sentinel connections too.
"""

from __future__ import annotations

from kombu import Queue

from csgoflip_jobs import keys
from csgoflip_jobs.engine import log_context as _log_context
from csgoflip_jobs.engine.celery_ext.result_backend import backend_aliases as _backend_aliases
from csgoflip_jobs.engine.options import MAX_PRIORITY_LEVEL
from csgoflip_jobs.helpers import sentinel as _sentinel
from csgoflip_jobs.helpers.connection import broker_transport_options as _transport_options
from csgoflip_jobs.setting_values import split_password as _split_password
from csgoflip_jobs.settings import get_settings
from csgoflip_jobs.settings import revealed as _revealed

_settings = get_settings()

broker_url = _settings.broker_url
broker_transport_options = {
    **_transport_options(_settings),
    "visibility_timeout": _settings.visibility_timeout_s,
    # Seconds between sweeps for jobs whose holder stopped heart-beating.
    "unacked_restore_interval": 5,
    "unacked_restore_throttle": 1,
    "priority_steps": list(range(MAX_PRIORITY_LEVEL + 1)),
}
broker_connection_retry_on_startup = True
# A daemon outlives a Redis restart: keep reconnecting instead of giving up.
broker_connection_max_retries = None

# redis://, rediss:// and sentinel:// results are the platform's retaining backends
# in this app (only), so the setting stays the plain Redis URL tools expect.
override_backends = _backend_aliases()
result_backend = _settings.broker_url
# A finished job's outcome is worth waiting for: storing it is retried through a
# Redis outage of up to a minute (1 s apart), while the job's message stays held.
result_backend_transport_options: dict[str, object] = {
    "retry_policy": {"timeout": 60.0, "max_retries": None}
}
redis_socket_connect_timeout = _settings.redis_connect_timeout_s
redis_socket_timeout = _settings.redis_command_timeout_s
redis_socket_keepalive = True
result_expires = None

accept_content = ["json"]
result_accept_content = ["json"]
task_serializer = "json"
result_serializer = "json"
event_serializer = "json"

# The platform's queues, in the order a worker listens to them, and where each job goes.
# Their jobs have BullMQ's defaults (3 tries, backoff 1 s then 2 s) even when sent
# without options (delay(), canvas); a task on any other queue keeps Celery's (an
# exception fails it at once; self.retry up to max_retries): see JobTry.from_request.
bullmq_queues = ("payment", "notification", "email")
task_queues = [Queue(name, routing_key=name) for name in bullmq_queues]
task_routes = {
    "process-withdrawal": {"queue": "payment"},
    "process-deposit": {"queue": "payment"},
    "send-notification": {"queue": "notification"},
    "send-email": {"queue": "email"},
    "requeue-stuck-withdrawals": {"queue": "payment"},
    "prune-session-sets": {"queue": "notification"},
    "snapshot-redis-stats": {"queue": "notification"},
}
task_publish_retry_policy = {
    "max_retries": 3,
    "interval_start": 0.05,
    "interval_step": 0.1,
    "interval_max": 0.2,
}

task_acks_late = True
task_reject_on_worker_lost = True
worker_prefetch_multiplier = _settings.worker_prefetch_multiplier

worker_send_task_events = True
task_send_sent_event = True
worker_hijack_root_logger = False
# Celery's line formats with the running job (and its trace) in them: log_context.py.
worker_log_format = _log_context.TEXT_FORMAT
worker_task_log_format = _log_context.TEXT_TASK_FORMAT
broker_channel_error_retry = True

imports = ("workers.payment", "workers.notification", "workers.email", "workers.maintenance")

# One beat at a time: celery-redbeat keeps the schedule and a lock in Redis.
beat_scheduler = "redbeat.RedBeatScheduler"
# The password goes apart: `celery inspect conf` and Flower's Config tab show settings,
# and Celery masks the broker and backend URLs but not this one (a key naming a
# password is masked, nested ones too).
redbeat_redis_url, _beat_password = _split_password(_settings.broker_url)
redbeat_redis_options: dict[str, object] = {"password": _beat_password} if _beat_password else {}
redbeat_key_prefix = keys.BEAT_KEY_PREFIX
beat_max_loop_interval = 1

if _settings.uses_sentinel:
    broker_transport_options.update(_sentinel.transport_options(_settings))
    broker_use_ssl = _sentinel.tls_options(_settings) or None
    result_backend_transport_options.update(_sentinel.transport_options(_settings))
    redis_backend_use_ssl = broker_use_ssl
    # celery-redbeat's own Sentinel form: the scheme selects it and the options name the
    # group; the URL itself is only shown in beat's banner (one host: it must parse).
    _first_host, _first_port = _settings.sentinel_nodes[0]
    redbeat_redis_url = f"redis-sentinel://{_first_host}:{_first_port}/{_settings.redis_db}"
    redbeat_redis_options = {
        "sentinels": _settings.sentinel_nodes,
        "service_name": _settings.redis_sentinel_master,
        "password": _revealed(_settings.redis_password),
        "db": _settings.redis_db,
        "socket_timeout": _settings.redis_command_timeout_s,
        "sentinel_kwargs": _sentinel.sentinel_kwargs(_settings),
    }

from beat_schedule import beat_schedule  # noqa: E402,F401 - schedules live in their own file
