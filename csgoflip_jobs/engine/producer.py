"""Adding jobs: validate every job, then store them whole or say exactly which.

Every job of a call is checked (name registered, data a JSON object within
JOB_MAX_BYTES that fits the task's signature, options valid) before any is sent, so
bad input stores nothing. Each job's message and task-sent event are stamped from
its task's template (:mod:`csgoflip_jobs.engine.messages`), one ENQUEUE each (which
also sends the event), and all of them go in one pipeline; each ENQUEUE stores its
job whole or not at all, so when Redis refuses some (out of memory) the error says
which. With REDIS_MIN_REPLICAS_ACK the pipeline ends with a WAIT
(:class:`Durability`), so an add returns only once that many replicas hold its jobs.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import cache
from typing import Any, NoReturn

from celery import Celery, signals
from kombu.utils.uuid import uuid

from csgoflip_jobs import keys
from csgoflip_jobs.engine.enqueue import JOB_HEADER, own_id_identity
from csgoflip_jobs.engine.errors import JobOptionsError
from csgoflip_jobs.engine.job_task import JobTask
from csgoflip_jobs.engine.messages import templates_of
from csgoflip_jobs.engine.options import JobOptions, encode_data, parse_options
from csgoflip_jobs.helpers.connection import broker_error, redacted_url
from csgoflip_jobs.helpers.errors import BrokerNotReplicatedError
from csgoflip_jobs.helpers.redis_calls import Batch, Command, Offload, ScriptCall, Steps

CheckedJob = tuple[str, dict[str, Any], str, JobOptions]
"""A job ready to send: task name, data, data as JSON, options."""

OPTION_NAMES = frozenset(
    {"delay", "priority", "attempts", "backoff", "remove_on_complete", "remove_on_fail", "job_id"}
)


def prepare(index: int, job: Mapping[str, Any]) -> tuple[Any, Any, JobOptions]:
    """One ``add_bulk`` entry (``{"name", "data", "opts"}``) as name, data and options."""
    if not isinstance(job, Mapping) or "name" not in job:
        raise JobOptionsError(f"job {index}: each bulk job needs a 'name'")
    opts = job.get("opts") or {}
    unknown = set(opts) - OPTION_NAMES
    if unknown:
        raise JobOptionsError(f"job {index}: unknown options {sorted(unknown)}")
    try:
        return job["name"], job.get("data"), parse_options(**opts)
    except JobOptionsError as exc:
        raise JobOptionsError(f"job {index}: {exc}") from None


@dataclass(frozen=True)
class Durability:
    """How many replicas must hold an add's jobs before it returns (0: the master alone),
    waiting at most ``timeout_ms`` (REDIS_MIN_REPLICAS_ACK, REDIS_REPLICA_ACK_TIMEOUT_MS)."""

    replicas: int = 0
    timeout_ms: int = 0

    def confirm(self) -> tuple[Command, ...]:
        """The calls that end a durable batch: a PUBLISH to a channel nobody reads, so
        that the connection's last write also covers a job that existed already (a re-add
        writes nothing), then a WAIT for the replicas."""
        if not self.replicas:
            return ()
        barrier = Command("PUBLISH", keys.REPLICATION_BARRIER_CHANNEL, "")
        return barrier, Command("WAIT", self.replicas, self.timeout_ms)


def add_jobs(
    app: Celery,
    queue: str,
    jobs: list[tuple[Any, Any, JobOptions]],
    max_bytes: int,
    events_max_len: int,
    durability: Durability = Durability(),
) -> Steps[list[str]]:
    """Store ``jobs`` on ``queue``; their ids (an existing ``job_id`` is kept, not added
    again). Raises JobOptionsError before any call when one of them is bad, and
    BrokerNotReplicatedError when fewer replicas than ``durability`` asks for confirm."""
    checked = check_jobs(app, queue, jobs, max_bytes)
    return (yield from send_checked(app, queue, checked, events_max_len, durability))


def check_jobs(
    app: Celery, queue: str, jobs: list[tuple[Any, Any, JobOptions]], max_bytes: int
) -> list[CheckedJob]:
    """Every job checked for ``queue``, ready for :func:`send_checked`; the
    JobOptionsError :func:`add_jobs` would raise for the first bad one. Sends nothing."""
    return [_check(app, queue, name, data, opts, max_bytes) for name, data, opts in jobs]


def send_checked(
    app: Celery,
    queue: str,
    checked: list[CheckedJob],
    events_max_len: int,
    durability: Durability = Durability(),
) -> Steps[list[str]]:
    """Store checked jobs; the templates they need are built first (blocking work,
    offloaded by the asyncio API). While anything listens to Celery's publish signals,
    each job is sent by Celery itself instead (:func:`_send_through_celery`)."""
    if publish_is_hooked():
        return (yield from _send_through_celery(app, queue, checked, durability))
    templates = templates_of(app)
    wanted = {(name, opts.priority_level) for name, _data, _json, opts in checked}
    if templates.missing(queue, wanted):
        yield Offload(lambda: templates.build(queue, wanted))
    ids: list[str] = []
    calls: list[ScriptCall] = []
    for name, data, data_json, opts in checked:
        job_id = opts.job_id or uuid()
        template = templates.get(queue, name, opts.priority_level)
        calls.append(template.stamp(job_id, data, data_json, opts, events_max_len))
        ids.append(job_id)
    confirm = durability.confirm()
    outcomes = yield Batch(calls, raise_errors=False, confirm=confirm)
    if confirm:
        *outcomes, _barrier, acked = outcomes
        if isinstance(acked, Exception):
            raise acked
    refused = [i for i, outcome in enumerate(outcomes) if isinstance(outcome, Exception)]
    if refused:
        _raise_partly_added(app, ids, outcomes, refused)
    if confirm and int(acked) < durability.replicas:
        _raise_not_replicated(app, ids, durability, int(acked))
    return ids


def publish_is_hooked() -> bool:
    """True while a receiver listens to ``before_task_publish`` or ``after_task_publish``
    (OpenTelemetry's Celery instrumentation, a header hook, an APM agent)."""
    return bool(signals.before_task_publish.receivers or signals.after_task_publish.receivers)


def _send_through_celery(
    app: Celery, queue: str, checked: list[CheckedJob], durability: Durability
) -> Steps[list[str]]:
    """Send each job with Celery's ``send_task``: its publish signals fire once per job,
    with the job's own id, headers (what a receiver adds reaches the task's request),
    body, exchange and routing key, as for any ``apply_async``; the channel stores each
    with ENQUEUE as usual. One round trip per job, in order; a durable add ends with
    one WAIT behind a PUBLISH, which covers every write before it (any connection's)."""
    ids: list[str] = []
    for index, (name, data, _json, opts) in enumerate(checked):
        header = opts.header()
        if opts.job_id is None:
            job_id = task_id = uuid()
        else:
            job_id = opts.job_id
            task_id, header = own_id_identity(queue, job_id, header)

        def send(
            name: str = name,
            data: dict[str, Any] = data,
            opts: JobOptions = opts,
            task_id: str = task_id,
            header: dict[str, Any] = header,
        ) -> Exception | None:
            try:
                app.send_task(
                    name,
                    kwargs=data,
                    task_id=task_id,
                    queue=queue,
                    priority=opts.priority_level,
                    headers={JOB_HEADER: header},
                )
            except Exception as exc:  # reported with what the batch stored, below
                return exc
            return None  # fmt: skip

        failure = yield Offload(send)
        if failure is not None:
            _raise_stopped_at(app, ids, index, len(checked), failure)
        ids.append(job_id)
    confirm = durability.confirm()
    if confirm:
        *_, acked = yield Batch([], confirm=confirm)
        if int(acked) < durability.replicas:
            _raise_not_replicated(app, ids, durability, int(acked))
    return ids


def _raise_stopped_at(
    app: Celery, stored: list[str], index: int, total: int, failure: Exception
) -> NoReturn:
    """The error of a batch sent job by job that failed at ``index``: the jobs before it
    are stored (``stored_ids``), it and those after are not (``refused``)."""
    error = broker_error(failure, app.conf.broker_url)
    if error is None:
        raise failure
    error.stored_ids, error.refused = list(stored), list(range(index, total))
    if total > 1:
        error.args = (
            f"{error} [sent job by job: the {len(stored)} before batch position {index} are "
            "stored (.stored_ids), the rest refused (.refused)]",
        )
    raise error from failure


def _raise_not_replicated(
    app: Celery, ids: list[str], durability: Durability, acked: int
) -> NoReturn:
    jobs = f"job {ids[0]}" if len(ids) == 1 else f"{len(ids)} jobs"
    error = BrokerNotReplicatedError(
        f"the queue Redis at {redacted_url(app.conf.broker_url)} holds the {jobs}, but only "
        f"{acked} of the {durability.replicas} replicas REDIS_MIN_REPLICAS_ACK asks for "
        f"confirmed within {durability.timeout_ms} ms: it may or may not survive a failover; "
        "adding it again with the same job_id is safe (it is stored once)"
    )
    error.stored_ids, error.refused = list(ids), []
    raise error


def _raise_partly_added(
    app: Celery, ids: list[str], outcomes: list[Any], refused: list[int]
) -> NoReturn:
    # Each job is stored whole or not at all, so the caller can be told exactly
    # which of the batch Redis holds and which to add again.
    first = outcomes[refused[0]]
    error = broker_error(first, app.conf.broker_url)
    if error is None:
        raise first
    stored = [
        job_id for job_id, o in zip(ids, outcomes, strict=True) if not isinstance(o, Exception)
    ]
    error.stored_ids, error.refused = stored, refused
    if len(ids) > 1:
        error.args = (
            f"{error} [{len(refused)} of {len(ids)} jobs refused (batch positions in "
            f".refused); the {len(stored)} stored are in .stored_ids]",
        )
    raise error from first


def _check(
    app: Celery, queue: str, job_name: object, data: object, opts: JobOptions, max_bytes: int
) -> CheckedJob:
    if not isinstance(job_name, str) or not job_name:
        raise JobOptionsError(f"job name must be a non-empty string, not {job_name!r}")
    _import_task_modules(app)
    if job_name not in app.tasks:
        raise JobOptionsError(f"no task is registered as {job_name!r}")
    refusal = _refusal(app, queue, job_name)
    if refusal:
        raise JobOptionsError(refusal)
    checked, data_json = encode_data(data, max_bytes)
    task = app.tasks[job_name]
    if isinstance(task, JobTask):
        try:
            task.check_data((), checked)
        except TypeError as exc:
            raise JobOptionsError(f"bad data for {job_name!r}: {exc}") from None
    return job_name, checked, data_json, opts


@cache
def _refusal(app: Celery, queue: str, job_name: str) -> str:
    """Why ``job_name`` may not be a job of ``queue`` ('' when it may): Celery's own
    tasks run only inside its canvas, and a task routed to a queue runs only there (a
    payout job on the notification queue would run with the wrong limits and workers).
    A task with no route of its own may run on any queue."""
    if job_name.startswith("celery."):
        return f"{job_name!r} is one of Celery's own tasks, not a job"
    routed = app.amqp.router.route({}, job_name, (), {}, app.tasks[job_name]).get("queue")
    home = getattr(routed, "name", None)
    if home and home not in (queue, app.conf.task_default_queue):
        return f"{job_name!r} is a job of queue {home!r} (task_routes), not of {queue!r}"
    return ""


@cache
def _import_task_modules(app: Celery) -> None:
    # Once per process: Celery's import hook costs ~0.3 ms, too much for every job.
    app.loader.import_default_modules()
