"""The run-local demo's withdrawal report: an outcome, never a payout under way."""

from __future__ import annotations

from collections.abc import Callable

import redis

from csgoflip_jobs import JobQueue
from csgoflip_jobs.ops.demo import settled_withdrawal_status
from csgoflip_jobs.payments.gateways import SandboxGateway
from tests.support.payment_helpers import funded_user, payment_service
from tests.support.polling import wait_until
from tests.support.workers import WorkerProcess


def test_a_withdrawal_being_paid_is_waited_for_until_it_completes(
    database_url: str, redis_client: redis.Redis, workers: Callable[..., WorkerProcess]
) -> None:
    service = payment_service(database_url)
    user_id = funded_user(service, 1_000)
    assert isinstance(service.gateway, SandboxGateway)
    service.gateway.set_plan(user_id, delay_ms=3000)  # "processing" for 3 s
    withdrawal_id = service.request_withdrawal(user_id, 300)
    JobQueue("payment").promote(f"withdrawal:{withdrawal_id}")
    workers(name="demo", env={"DATABASE_URL": database_url})
    wait_until(lambda: service.get_withdrawal(withdrawal_id).status == "processing", 30)
    assert settled_withdrawal_status(service, withdrawal_id, 60) == "completed"
    assert service.get_balance(user_id) == 700


def test_a_withdrawal_nobody_pays_is_reported_as_it_is_when_the_wait_runs_out(
    database_url: str, redis_client: redis.Redis
) -> None:
    service = payment_service(database_url)
    withdrawal_id = service.request_withdrawal(funded_user(service, 1_000), 300)
    assert settled_withdrawal_status(service, withdrawal_id, 0.5) == "pending"
