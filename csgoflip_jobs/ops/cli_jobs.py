"""The ``csgoflip-jobs`` commands that read and change jobs: enqueue, counts, jobs,
remove, promote, pause, resume, drain, clean, retry-failed, events, upgrade-keys."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import click

from csgoflip_jobs.engine.job import STATES

if TYPE_CHECKING:
    from csgoflip_jobs.engine.job import Job
    from csgoflip_jobs.engine.job_queue import JobQueue

COUNT_COLUMNS = ("waiting", "delayed", "active", "completed", "failed", "paused")


def queue_option(function: Callable[..., Any]) -> Callable[..., Any]:
    """The ``--queue`` option every job command takes."""
    return click.option("--queue", "queue_name", required=True, help="the queue")(function)


def open_queue(name: str) -> JobQueue:
    """The JobQueue called ``name``; a clear error for an unknown one."""
    from csgoflip_jobs.engine.job_queue import JobQueue

    try:
        return JobQueue(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--queue") from None


def print_counts(table: Mapping[str, Mapping[str, int]]) -> None:
    """Jobs per state of each queue, one row per queue."""
    click.echo(f"{'queue':<14}" + "".join(f"{s:>11}" for s in COUNT_COLUMNS))
    for name, row in table.items():
        click.echo(f"{name:<14}" + "".join(f"{row.get(s, 0):>11}" for s in COUNT_COLUMNS))


@click.command()
@click.argument("queue")
@click.argument("job_name")
@click.argument("data", default="{}")
@click.option("--delay", type=int, help="milliseconds before the job may run")
@click.option("--priority", type=int, help="1 is the highest; none runs first")
@click.option("--attempts", type=int, help="tries in all (default 3)")
@click.option("--job-id", help="a job id given twice is enqueued once")
def enqueue(
    queue: str,
    job_name: str,
    data: str,
    delay: int | None,
    priority: int | None,
    attempts: int | None,
    job_id: str | None,
) -> None:
    """Enqueue JOB_NAME on QUEUE with DATA (a JSON object) and print its id."""
    from csgoflip_jobs.engine.errors import JobOptionsError

    try:
        payload = json.loads(data)
        added = open_queue(queue).add(
            job_name, payload, delay=delay, priority=priority, attempts=attempts, job_id=job_id
        )
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="DATA") from None
    except JobOptionsError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(added)


@click.command()
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def counts(as_json: bool) -> None:
    """Jobs per state in each queue."""
    from csgoflip_jobs.celery_app import job_counts_by_queue

    table = job_counts_by_queue()
    if as_json:
        click.echo(json.dumps(table, indent=2))
        return
    print_counts(table)


@click.command()
@click.argument("state", type=click.Choice([*STATES, "paused"]))
@queue_option
@click.option("--start", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of lines")
def jobs(state: str, queue_name: str, start: int, limit: int, as_json: bool) -> None:
    """A queue's jobs in STATE, in BullMQ's order (waiting: next to run first;
    delayed: soonest due first; active: oldest start first; finished: newest first)."""
    queue = open_queue(queue_name)
    asc = state not in ("completed", "failed")
    found = queue.get_jobs([state], start, start + limit - 1, asc=asc)
    if as_json:
        click.echo(json.dumps([job.as_dict() for job in found], indent=2))
        return
    for job in found:
        click.echo(f"{job.id}  {job.name}  tries={job.attempts_made}  {_outcome(job)}")


def _outcome(job: Job) -> str:
    if job.state == "failed":
        return job.failed_reason or ""
    if job.state == "completed":
        return json.dumps(job.returnvalue)
    if job.state == "delayed":
        return f"due={job.due}"
    return job.state


@click.command()
@queue_option
@click.argument("job_ids", nargs=-1, required=True)
def remove(queue_name: str, job_ids: tuple[str, ...]) -> None:
    """Remove jobs that are not running (waiting, delayed, finished); exit 1 when one
    could not be removed."""
    _each(open_queue(queue_name).remove, job_ids, "removed", "running or unknown")


@click.command()
@queue_option
@click.argument("job_ids", nargs=-1, required=True)
def promote(queue_name: str, job_ids: tuple[str, ...]) -> None:
    """Make delayed jobs waiting now; exit 1 when one was not delayed."""
    _each(open_queue(queue_name).promote, job_ids, "promoted", "not delayed")


def _each(action: Callable[[str], bool], job_ids: tuple[str, ...], done: str, why: str) -> None:
    refused = [job_id for job_id in job_ids if not action(job_id)]
    for job_id in job_ids:
        click.echo(f"{job_id}  {'not ' + done + ' (' + why + ')' if job_id in refused else done}")
    if refused:
        raise SystemExit(1)


@click.command()
@queue_option
def pause(queue_name: str) -> None:
    """Stop every worker starting the queue's jobs (adds are still accepted)."""
    changed = open_queue(queue_name).pause()
    click.echo(f"{queue_name} paused" + ("" if changed else " (it already was)"))


@click.command()
@queue_option
def resume(queue_name: str) -> None:
    """Let workers start the queue's jobs again."""
    changed = open_queue(queue_name).resume()
    click.echo(f"{queue_name} resumed" + ("" if changed else " (it was not paused)"))


@click.command()
@queue_option
@click.option("--delayed", is_flag=True, help="remove delayed jobs too")
def drain(queue_name: str, delayed: bool) -> None:
    """Remove every waiting job of the queue (and, with --delayed, every delayed one)."""
    click.echo(f"removed {open_queue(queue_name).drain(delayed)} jobs of {queue_name}")


@click.command()
@queue_option
@click.option(
    "--state",
    type=click.Choice(["completed", "failed", "waiting", "delayed"]),
    default="completed",
    show_default=True,
)
@click.option("--grace-ms", type=click.IntRange(min=0), required=True, help="keep younger jobs")
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True)
def clean(queue_name: str, state: str, grace_ms: int, limit: int) -> None:
    """Remove up to LIMIT jobs in STATE older than GRACE_MS (finished, or added, that long
    ago)."""
    removed = open_queue(queue_name).clean(grace_ms, limit, state)
    click.echo(f"removed {len(removed)} {state} jobs of {queue_name}")


@click.command("retry-failed")
@queue_option
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True)
def retry_failed(queue_name: str, limit: int) -> None:
    """Enqueue the newest failed jobs of a queue again, each under its own id."""
    queue = open_queue(queue_name)
    failed = queue.get_failed(0, limit - 1)
    with click.progressbar(failed, label=f"retrying {len(failed)} jobs") as progress:
        for job in progress:
            queue.retry_failed(job)
    click.echo(f"re-enqueued {len(failed)} failed jobs of {queue_name}")


@click.command()
@queue_option
@click.option("--from", "last_id", default="0", show_default=True, help="after this stream id")
@click.option("--follow", is_flag=True, help="keep printing events as they come")
def events(queue_name: str, last_id: str, follow: bool) -> None:
    """The queue's job events, one line each (Ctrl-C stops --follow)."""
    from csgoflip_jobs.engine.events import QueueEvents

    stream = QueueEvents(open_queue(queue_name).name)
    if not follow:
        found = stream.read(last_id, block_s=0.001, count=10_000)
        for event in found:
            click.echo(_event_line(event))
        return
    try:
        for event in stream.listen(last_id):
            click.echo(_event_line(event))
    except KeyboardInterrupt:
        pass


def _event_line(event: dict[str, Any]) -> str:
    extra = {k: v for k, v in event.items() if k not in ("id", "event", "job_id")}
    details = " ".join(f"{k}={json.dumps(v)}" for k, v in extra.items())
    return f"{event['id']}  {event['event']:<10} {event['job_id'] or '-'}  {details}".rstrip()


@click.command("upgrade-keys")
def upgrade_keys() -> None:
    """Move job records an earlier version kept under shared keys to their queue's (every
    worker does so at start); safe to run at any time. Exit 1 when some were left."""
    from csgoflip_jobs.engine.upgrade import upgrade_job_keys
    from csgoflip_jobs.helpers.connection import broker_client

    report = upgrade_job_keys(broker_client())
    click.echo(f"moved {report.moved} job records to their queues' keys")
    for job_id in report.taken:
        click.echo(f"left {job_id}: its queue has a job of that id already")
    for job_id in report.lost:
        click.echo(f"left {job_id}: its record names no queue")
    if not report.complete:
        raise SystemExit(1)


COMMANDS = (enqueue, counts, jobs, remove, promote, pause, resume, drain, clean, retry_failed,
            events, upgrade_keys)  # fmt: skip
"""Registered on the ``csgoflip-jobs`` group by :mod:`csgoflip_jobs.ops.cli`."""
