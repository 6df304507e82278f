"""The ``csgoflip-jobs`` command: workers, the local stack, gateway, Flower, operators' tools."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from csgoflip_jobs.errors import ConfigError
from csgoflip_jobs.ops.cli_jobs import COMMANDS, print_counts

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


for _command in COMMANDS:
    main.add_command(_command)


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
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=8765, show_default=True)
@click.option("-l", "--loglevel", default="info", show_default=True)
def gateway(host: str, port: int, loglevel: str) -> None:
    """Serve the WebSocket gateway (live notifications; demo page at /demo)."""
    import uvicorn

    from csgoflip_jobs.settings import get_settings

    uvicorn.run(
        "csgoflip_jobs.notifications.gateway:create_app",
        factory=True,
        host=host,
        port=port,
        log_level=loglevel,
        ws_max_size=get_settings().websocket_max_message_bytes,
        proxy_headers=False,  # the peer is the peer, whatever X-Forwarded-For says
    )


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", type=click.IntRange(1, 65535), default=5555, show_default=True)
def flower(host: str, port: int) -> None:
    """Serve the Flower dashboard (FLOWER_USER / FLOWER_PASSWORD for basic auth;
    required with APP_ENV=production), with the jobs Redis holds at /jobs. Prometheus
    metrics are at /metrics, behind the same credentials."""
    from csgoflip_jobs.celery_app import app
    from csgoflip_jobs.engine.celery_ext import flower as flower_ext

    flower_ext.prepare(app)
    if flower_ext.configured().anonymous and host not in ("127.0.0.1", "localhost", "::1"):
        raise SystemExit(
            "csgoflip-jobs: Flower without FLOWER_USER / FLOWER_PASSWORD listens on the "
            "loopback only; set them to serve it on another address"
        )
    click.echo(f"Flower: http://{host}:{port}/")
    app.start(argv=["flower", f"--address={host}", f"--port={port}"])


@main.command("flower-token")
@click.argument("action", type=click.Choice(["add", "revoke", "list"]))
@click.argument("name", required=False)
@click.option("--read-only", is_flag=True, help="the token may only read")
def flower_token(action: str, name: str | None, read_only: bool) -> None:
    """API tokens for Flower's /api/jobs (Authorization: Bearer <token>): ``add NAME``
    prints a new one once (only its hash is kept), ``revoke NAME`` ends it at once."""
    from csgoflip_jobs.engine.celery_ext import flower_auth

    if action == "list":
        for token_name, reader in flower_auth.token_names():
            click.echo(f"{token_name}  {'read-only' if reader else 'read and act'}")
        return
    if not name:
        raise click.UsageError(f"flower-token {action} needs the token's NAME")
    if action == "add":
        click.echo(flower_auth.create_token(name, read_only))
    elif not flower_auth.revoke_token(name):
        raise SystemExit(f"no token named {name!r}")


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
    print_counts(snapshot.queues)


@main.command()
def check() -> None:
    """Production readiness: eviction policy, persistence, password, TLS, Flower auth,
    Sentinel or replicas, durable enqueue, Redlock's masters.

    Exits with status 1 when anything is unsafe (warnings do not count).
    """
    from csgoflip_jobs.ops.readiness import run_checks

    checks = run_checks()
    for item in checks:
        verdict = {True: "ok", False: "WARN" if item.advisory else "UNSAFE", None: "unknown"}
        click.echo(f"{verdict[item.ok]:<8}{item.name:<20}{item.detail}")
    if any(item.ok is False and not item.advisory for item in checks):
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
@click.option(
    "--webapp-port",
    type=click.IntRange(1, 65535),
    default=8000,
    show_default=True,
    help="port of the example web app (examples/webapp)",
)
@click.option(
    "--redis-url",
    envvar="REDIS_URL",
    help="the Redis to use, which must answer [default: REDIS_URL; else 127.0.0.1:6379, "
    "started with its data in var/redis when nothing answers there]",
)
def run_local(
    concurrency: int,
    demo: bool,
    flower_port: int,
    gateway_port: int,
    webapp_port: int,
    redis_url: str | None,
) -> None:
    """Run the whole platform on this machine (Redis started if needed); Ctrl-C stops it.

    Prints which Redis it uses, how it persists and its maxmemory-policy, and warns
    when that is not an append-only, noeviction Redis.
    """
    from csgoflip_jobs.ops.local_stack import LocalStack, install_stop_signals

    stack = LocalStack(
        concurrency=concurrency,
        demo=demo,
        flower_port=flower_port,
        gateway_port=gateway_port,
        redis_url=redis_url,
        webapp_port=webapp_port,
    )
    install_stop_signals()
    try:
        stack.start()
        stack.wait()
    except KeyboardInterrupt:
        click.echo("\nstopping...")
    finally:
        stack.stop()


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


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
