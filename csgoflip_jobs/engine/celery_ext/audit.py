"""Every kombu, Celery and Flower private name the platform touches, in one list.

Each :class:`PrivateUse` says what is done with the name, where and why; the
README beside this module shows the same rows as a table. ``tests/test_celery_ext``
checks every row against the installed libraries (the name exists, an overridden
method still takes the parameters relied on, a per-instance attribute is still
set on a live channel), so an upgrade that removes or renames one fails loudly.
"""

from __future__ import annotations

from csgoflip_jobs.engine.celery_ext.audit_flower import FLOWER_USES, PrivateUse

__all__ = ["CHECKED_WITH", "USES", "PrivateUse"]

CHECKED_WITH = {"celery": "5.7.0", "kombu": "5.7.0", "flower": "2.2.0"}
"""The versions every row was last read against."""


_CHANNEL = "kombu.transport.redis:Channel"
_QOS = "kombu.transport.redis:QoS"
_SENTINEL_CHANNEL = "kombu.transport.redis:SentinelChannel"
USES: tuple[PrivateUse, ...] = (
    PrivateUse(
        _CHANNEL,
        "_brpop_start",
        "override",
        "transport",
        "wait on the ready lists, or send DELIVER while messages keep coming",
        ("timeout",),
    ),
    PrivateUse(
        _CHANNEL,
        "_brpop_read",
        "override",
        "transport",
        "read what _brpop_start sent; take the message with DELIVER (atomic)",
    ),
    PrivateUse(
        _CHANNEL,
        "_put",
        "override",
        "publishing",
        "enqueue task messages with the ENQUEUE script (record, dedupe, delay)",
        ("queue", "message"),
    ),
    PrivateUse(
        _CHANNEL,
        "_put_fanout",
        "override",
        "publishing",
        "collect task-sent events into add_bulk's streamed pipeline",
        ("exchange", "message", "routing_key"),
    ),
    PrivateUse(
        _CHANNEL,
        "_do_restore_message",
        "override",
        "publishing",
        "a requeued message also pushes its ready signal (same transaction)",
        ("payload", "exchange", "routing_key", "pipe", "leftmost"),
    ),
    PrivateUse(
        _CHANNEL,
        "_purge",
        "override",
        "publishing",
        "celery purge removes the waiting jobs' records with their messages",
        ("queue",),
    ),
    PrivateUse(
        _CHANNEL, "_q_for_pri", "call", "transport", "the list key of a queue's priority level"
    ),
    PrivateUse(
        _CHANNEL,
        "_get_message_priority",
        "call",
        "publishing",
        "the priority level of a message being enqueued",
    ),
    PrivateUse(
        _CHANNEL, "_lookup", "call", "publishing", "the queues a restored message goes back to"
    ),
    PrivateUse(
        _CHANNEL,
        "_get_publish_topics",
        "call",
        "publishing",
        "the pub/sub topics of an event collected for add_bulk",
    ),
    PrivateUse(
        _CHANNEL,
        "_flush_brpop_reauth",
        "call",
        "transport",
        "kombu's re-authentication after a poll, kept as kombu does it",
    ),
    PrivateUse(
        _CHANNEL,
        "_queue_cycle",
        "read",
        "transport",
        "which queues to poll next, and rotating after a delivery",
        on_instance=True,
    ),
    PrivateUse(
        _CHANNEL,
        "_in_poll",
        "write",
        "transport",
        "tell kombu a poll is in flight on the connection",
        on_instance=True,
    ),
    PrivateUse(
        _CHANNEL,
        "_brpop_sent_at",
        "write",
        "transport",
        "the time kombu's poll-timeout check reads",
        on_instance=True,
    ),
    PrivateUse(
        "kombu.transport.virtual:Transport",
        "_deliver",
        "call",
        "transport",
        "hand a message taken by DELIVER to the consumer, as kombu's poll does",
    ),
    PrivateUse(
        _QOS,
        "append",
        "override",
        "qos",
        "skip the unacked write for messages DELIVER already recorded",
        ("message", "delivery_tag"),
    ),
    PrivateUse(
        _QOS,
        "restore_unacked",
        "override",
        "qos",
        "never put back the message of a job that is still running",
        ("client",),
    ),
    PrivateUse(
        _QOS,
        "reject",
        "override",
        "qos",
        "a requeue after the channel closed is left to the visibility sweep",
        ("delivery_tag", "requeue"),
    ),
    PrivateUse(
        _QOS,
        "pipe_or_acquire",
        "override",
        "qos",
        "ack a running job's message on a fresh client after its channel closed",
        ("pipe", "client"),
    ),
    PrivateUse(
        _QOS,
        "_delivered",
        "read",
        "qos, job_keeper",
        "the messages this channel holds (restore, heartbeat)",
        on_instance=True,
    ),
    PrivateUse(
        "kombu.transport.redis:PublishBatch",
        "add",
        "call",
        "transport",
        "a control reply published in a batch also pushes its ready signal",
    ),
    PrivateUse(
        "kombu.transport.redis",
        "dumps",
        "call",
        "transport",
        "kombu's JSON encoding of a message, so stored messages are byte-identical",
    ),
    PrivateUse(
        "kombu.transport",
        "TRANSPORT_ALIASES",
        "write",
        "transport",
        "redis://, rediss:// and sentinel:// use the platform's transport (install_transport)",
    ),
    PrivateUse(
        "kombu.transport",
        "_transport_cache",
        "write",
        "transport",
        "forget a transport class resolved before install_transport",
    ),
    PrivateUse(
        "celery.worker.state",
        "active_requests",
        "read",
        "qos",
        "the jobs this worker process runs (kept through a reconnect)",
    ),
    PrivateUse(
        "celery.backends.redis:RedisBackend",
        "_store_result",
        "override",
        "result_backend",
        "store the outcome with FINISH (record, retention)",
        ("task_id", "result", "state", "traceback", "request"),
    ),
    PrivateUse(
        "celery.loaders.base:BaseLoader",
        "override_backends",
        "write",
        "result_backend",
        "redis://, rediss:// and sentinel:// result URLs pick the retaining backends",
    ),
    PrivateUse(
        "celery.backends.redis:RedisBackend",
        "_get_result_meta",
        "call",
        "result_backend",
        "Celery's own result document, stored by FINISH",
    ),
    PrivateUse(
        _SENTINEL_CHANNEL,
        "_sentinel_managed_pool",
        "override",
        "sentinel",
        "find the master with the platform's Sentinel, whose errors name the setting",
        ("asynchronous",),
    ),
    PrivateUse(
        _CHANNEL,
        "_connparams",
        "call",
        "sentinel",
        "kombu's connection options (the poller's disconnect hook) for the Sentinel pool",
        ("asynchronous",),
    ),
    PrivateUse(
        _CHANNEL,
        "_sentinel_manager",
        "write",
        "sentinel",
        "kombu closes the connections to the sentinels through it (kombu#1108)",
        on_instance=True,
    ),
    PrivateUse(
        _CHANNEL,
        "_async_sentinel_manager",
        "write",
        "sentinel",
        "the same, for the consumer's (asynchronous) pool",
        on_instance=True,
    ),
    PrivateUse(
        "celery.backends.redis:SentinelBackend",
        "_get_sentinel_instance",
        "override",
        "sentinel",
        "the platform's Sentinel, with timeouts on the sentinel connections",
    ),
    PrivateUse(
        "celery.backends.redis:RedisBackend",
        "_transport_options",
        "read",
        "sentinel",
        "result_backend_transport_options: master_name, sentinel_kwargs",
    ),
    *FLOWER_USES,
)
