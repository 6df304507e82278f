"""The ``csgoflip-jobs`` command: workers, the local stack, gateway, Flower, operators' tools."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Any

import click

from csgoflip_jobs.errors import ConfigError

if TYPE_CHECKING:
    from csgoflip_jobs.engine.job_queue import JobQueue

CONFIG_ERROR_PREFIX = "csgoflip-jobs: configuration error: "


class _Commands(click.Group):
    """The command group; a bad setting stops any command with one line naming it."""

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except ConfigError as exc:
            raise SystemExit(f"{CONFIG_ERROR_PREFIX}{exc}") from None


@click.group(cls=_Commands)
def main() -> None:
    """Background jobs of the CSGOFlip web app (Celery on Redis, BullMQ semantics)."""


@main.command(context_settings={"ignore_unknown_options": True})
@click.option("-Q", "--queues", help="comma-separated queues to consume (default: all)")
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=2,
    show_default=True,
    help="worker processes",
)
@click.option("-l", "--loglevel", default="info", show_default=True)
@click.argument("celery_args", nargs=-1, type=click.UNPROCESSED)
def worker(
    queues: str | None, concurrency: int, loglevel: str, celery_args: tuple[str, ...]
) -> None:
    """Run a worker (prefork pool); extra arguments go to ``celery worker``."""
    from csgoflip_jobs.celery_app import app

    names = _check_queues(queues)
    arguments = ["worker", "-Q", ",".join(names), "-c", str(concurrency), "-l", loglevel]
    app.worker_main([*arguments, *celery_args])


@main.command()
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
    from csgoflip_jobs.engine.job_queue import JobQueue

    try:
        payload = json.loads(data)
        job = JobQueue(queue).add(
            job_name, payload, delay=delay, priority=priority, attempts=attempts, job_id=job_id
        )
    except json.JSONDecodeError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="DATA") from None
    except (JobOptionsError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(job)


@main.command("counts")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def counts(as_json: bool) -> None:
    """Jobs per state in each queue."""
    from csgoflip_jobs.celery_app import job_counts_by_queue

    table = job_counts_by_queue()
    if as_json:
        click.echo(json.dumps(table, indent=2))
        return
    _print_counts(table)


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True)
@click.option("-l", "--loglevel", default="info", show_default=True)
def gateway(host: str, port: int, loglevel: str) -> None:
    """Serve the WebSocket gateway (live notifications; demo page at /demo)."""
    import uvicorn

    uvicorn.run(
        "csgoflip_jobs.notifications.gateway:create_app",
        factory=True,
        host=host,
        port=port,
        log_level=loglevel,
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=5555, show_default=True)
def flower(host: str, port: int) -> None:
    """Serve the Flower dashboard (FLOWER_USER / FLOWER_PASSWORD for basic auth;
    required with APP_ENV=production). Prometheus metrics are at /metrics, behind the
    same credentials."""
    from csgoflip_jobs.celery_app import app
    from csgoflip_jobs.engine.celery_ext import flower as flower_ext

    flower_ext.prepare(app)
    click.echo(f"Flower: http://{host}:{port}/")
    app.start(argv=["flower", f"--address={host}", f"--port={port}"])


@main.command()
def migrate() -> None:
    """Bring the payments database (DATABASE_URL) to the newest schema."""
    from csgoflip_jobs.payments.database import migrate as run_migrations

    run_migrations()
    click.echo("database is up to date")


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of text")
def reconcile(as_json: bool) -> None:
    """Check balances against the ledger and payouts against completed withdrawals.

    Exits with status 1 when anything needs an operator's attention.
    """
    from csgoflip_jobs.payments.service import PaymentService

    report = PaymentService().reconcile()
    if as_json:
        click.echo(
            json.dumps(
                {
                    "ok": report.ok,
                    "users": report.users,
                    "completed_withdrawals": report.completed_withdrawals,
                    "payouts": report.payouts,
                    "problems": report.problems,
                    "uncertain_withdrawals": report.uncertain_withdrawals,
                },
                indent=2,
            )
        )
    else:
        payouts = "not checked (http gateway)" if report.payouts is None else report.payouts
        click.echo(
            f"users: {report.users}  completed withdrawals: "
            f"{report.completed_withdrawals}  payouts: {payouts}"
        )
        for problem in report.problems:
            click.echo(f"PROBLEM: {problem}")
        for withdrawal_id in report.uncertain_withdrawals:
            click.echo(
                f"REVIEW: withdrawal {withdrawal_id} is uncertain (the gateway timed out "
                "on its last try; check with the provider before refunding)"
            )
        click.echo("reconcile: ok" if report.ok else "reconcile: needs attention")
    if not report.ok:
        sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of a table")
def stats(as_json: bool) -> None:
    """Redis statistics (clients, memory, keys, hit rate, uptime) and jobs per queue."""
    from csgoflip_jobs.celery_app import job_counts_by_queue
    from csgoflip_jobs.helpers.monitoring import RedisMonitor

    snapshot = RedisMonitor(queue_counts=job_counts_by_queue).get_stats()
    if as_json:
        click.echo(json.dumps(snapshot.as_dict(), indent=2))
        return
    click.echo(f"connected clients  {snapshot.connected_clients}")
    click.echo(f"used memory        {snapshot.used_memory_human}")
    click.echo(f"total keys         {snapshot.total_keys}")
    click.echo(f"hit rate           {snapshot.hit_rate:.1%}")
    click.echo(f"uptime (days)      {snapshot.uptime_days}")
    click.echo(f"maxmemory policy   {snapshot.maxmemory_policy}")
    click.echo(f"evicted keys       {snapshot.evicted_keys}")
    _print_counts(snapshot.queues)


@main.command()
@click.argument("state", type=click.Choice(["completed", "failed"]))
@click.option("--queue", "queue_name", required=True)
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of lines")
def jobs(state: str, queue_name: str, limit: int, as_json: bool) -> None:
    """Retained completed or failed jobs of a queue, newest first."""
    queue = _queue(queue_name)
    found = (queue.get_completed if state == "completed" else queue.get_failed)(0, limit - 1)
    if as_json:
        click.echo(json.dumps([vars(job) for job in found], indent=2))
        return
    for job in found:
        outcome = job.failed_reason if state == "failed" else json.dumps(job.returnvalue)
        click.echo(f"{job.id}  {job.name}  tries={job.attempts_made}  {outcome}")


@main.command("retry-failed")
@click.option("--queue", "queue_name", required=True)
@click.option("--limit", type=click.IntRange(min=1), default=1000, show_default=True)
def retry_failed(queue_name: str, limit: int) -> None:
    """Enqueue the newest failed jobs of a queue again, each under its own id."""
    queue = _queue(queue_name)
    failed = queue.get_failed(0, limit - 1)
    with click.progressbar(failed, label=f"retrying {len(failed)} jobs") as progress:
        for job in progress:
            queue.retry_failed(job)
    click.echo(f"re-enqueued {len(failed)} failed jobs of {queue_name}")


@main.command()
def check() -> None:
    """Production readiness: eviction policy, persistence, password, TLS, Flower auth.

    Exits with status 1 when anything is unsafe.
    """
    from csgoflip_jobs.ops.readiness import run_checks

    checks = run_checks()
    for item in checks:
        verdict = {True: "ok", False: "UNSAFE", None: "unknown"}[item.ok]
        click.echo(f"{verdict:<8}{item.name:<20}{item.detail}")
    if any(item.ok is False for item in checks):
        click.echo("not ready for production")
        sys.exit(1)
    click.echo("ready for production")


@main.command("run-local")
@click.option(
    "-c",
    "--concurrency",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="processes per queue worker",
)
@click.option(
    "--demo/--no-demo",
    default=True,
    show_default=True,
    help="run a short demo workload after start-up",
)
@click.option("--flower-port", type=click.IntRange(1, 65535), default=5555, show_default=True)
@click.option("--gateway-port", type=click.IntRange(1, 65535), default=8765, show_default=True)
def run_local(concurrency: int, demo: bool, flower_port: int, gateway_port: int) -> None:
    """Run the whole platform on this machine (Redis started if needed); Ctrl-C stops it."""
    from csgoflip_jobs.ops.local_stack import LocalStack, install_stop_signals

    stack = LocalStack(
        concurrency=concurrency, demo=demo, flower_port=flower_port, gateway_port=gateway_port
    )
    install_stop_signals()
    try:
        stack.start()
        stack.wait()
    except KeyboardInterrupt:
        click.echo("\nstopping...")
    finally:
        stack.stop()


def _print_counts(table: dict[str, dict[str, int]]) -> None:
    states = ("waiting", "delayed", "active", "completed", "failed")
    click.echo(f"{'queue':<14}" + "".join(f"{s:>11}" for s in states))
    for name, row in table.items():
        click.echo(f"{name:<14}" + "".join(f"{row[s]:>11}" for s in states))


def _check_queues(queues: str | None) -> tuple[str, ...]:
    """The queues named (all the app's when None); BadParameter for an unknown one."""
    from csgoflip_jobs.celery_app import app
    from csgoflip_jobs.engine.job_queue import queue_names

    known = queue_names(app)
    if queues is None:
        return known
    names = tuple(queues.split(","))
    unknown = [q for q in names if q not in known]
    if unknown:
        raise click.BadParameter(
            f"unknown queues {unknown}; the queues are {', '.join(known)}",
            param_hint="--queues",
        )
    return names


def _queue(name: str) -> JobQueue:
    """The JobQueue called ``name``; a clear error for an unknown one."""
    from csgoflip_jobs.engine.job_queue import JobQueue

    try:
        return JobQueue(name)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--queue") from None


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
