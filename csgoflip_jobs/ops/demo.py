"""The demo workload ``csgoflip-jobs run-local`` runs once the stack is up: a deposit,
live notifications and a withdrawal, each step printed as it lands."""

from __future__ import annotations

import time

import click

from csgoflip_jobs.engine.job_queue import JobQueue
from csgoflip_jobs.helpers.sessions import SessionService
from csgoflip_jobs.payments.service import PaymentService
from csgoflip_jobs.payments.stuck import PAYABLE

DEMO_NOTIFICATIONS = 20
DEMO_TICKET_TTL_S = 600
"""The demo link signs a browser in once, within this long."""
DEMO_WITHDRAWAL_WAIT_S = 45.0
"""How long the demo waits for its withdrawal's outcome (its job is delayed 5 s)."""


def run_demo(gateway_url: str) -> None:
    """A short workload: a deposit, live notifications, a withdrawal; progress shown."""
    payments = PaymentService()
    user_id = payments.create_user()
    payments.schedule_deposit_processing(payments.create_deposit(user_id, 10_000))
    sessions = SessionService()
    session = sessions.create(user_id, {"demo": True})
    # A single-use ticket in the fragment: the session id itself never goes into a URL,
    # a log or the browser's history.
    ticket = sessions.issue_ticket(session.id, ttl_s=DEMO_TICKET_TTL_S)
    click.echo(f"  Demo:     {gateway_url}/demo#{ticket}  (opens once, within 10 minutes)")
    notifications = JobQueue("notification")
    with click.progressbar(range(DEMO_NOTIFICATIONS), label="demo: notifications") as bar:
        for n in bar:
            notifications.add(
                "send-notification",
                {"user_id": user_id, "type": "case-opened", "payload": {"case": n + 1}},
            )
            time.sleep(0.25)
    deadline = time.monotonic() + 30
    while payments.get_balance(user_id) == 0 and time.monotonic() < deadline:
        time.sleep(0.2)
    withdrawal_id = payments.request_withdrawal(user_id, 2_500)
    click.echo(f"demo: deposit credited; withdrawal {withdrawal_id} runs in 5 s (priority 1)")
    status = settled_withdrawal_status(payments, withdrawal_id, DEMO_WITHDRAWAL_WAIT_S)
    click.echo(
        f"demo: withdrawal {withdrawal_id} {status}"
        f"; balance {payments.get_balance(user_id)}; `csgoflip-jobs counts` for the rest"
    )


def settled_withdrawal_status(
    payments: PaymentService, withdrawal_id: int, timeout_s: float
) -> str:
    """The withdrawal's status once it is neither pending nor processing (a payout
    under way is not an outcome yet), or its status when ``timeout_s`` ran out."""
    deadline = time.monotonic() + timeout_s
    status = payments.get_withdrawal(withdrawal_id).status
    while status in PAYABLE and time.monotonic() < deadline:
        time.sleep(0.2)
        status = payments.get_withdrawal(withdrawal_id).status
    return status
