"""Payout gateways: where withdrawals are paid, behind one small interface.

Every payout carries an idempotency key (``withdrawal:<id>``); a gateway that
sees the same key twice pays once and returns the first payout again. That is
what makes a redelivered or duplicated withdrawal job safe.

* ``sandbox`` (default) records each payout in its own table, with optional
  failure injection and delays (``SandboxGateway.set_plan``) for demos and tests.
* ``http`` POSTs to PAYOUT_URL with an ``Idempotency-Key`` header: 2xx is paid,
  4xx is refused for good, 5xx, timeouts and connection errors may be retried.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import httpx
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from csgoflip_jobs.payments.errors import (
    PayoutTimeoutError,
    PermanentPayoutError,
    TransientPayoutError,
)
from csgoflip_jobs.payments.models import SandboxPayout, SandboxPlan
from csgoflip_jobs.settings import get_settings


@dataclass(frozen=True)
class PayoutRequest:
    """Money to send: ``amount_minor`` to ``user_id``, once per ``idempotency_key``."""

    idempotency_key: str
    user_id: int
    amount_minor: int


class PayoutGateway(Protocol):
    """Pays a request and returns the gateway's reference for it."""

    def payout(self, request: PayoutRequest) -> str:
        """Pay once per idempotency key; raise Transient/PermanentPayoutError on failure."""
        ...


class SandboxGateway:
    """Pays into the ``sandbox_payouts`` table: one row per idempotency key."""

    def __init__(self, sessions: sessionmaker[Session]) -> None:
        self._sessions = sessions

    def payout(self, request: PayoutRequest) -> str:
        """Record the payout (or return the one already recorded for this key)."""
        delay_ms = self._follow_plan(request.user_id)
        reference = self._record(request)
        if delay_ms:
            # A slow answer after the money moved: the case a crash makes dangerous.
            time.sleep(delay_ms / 1000)
        return reference

    def _record(self, request: PayoutRequest) -> str:
        with self._sessions() as session:
            existing = self._find(session, request.idempotency_key)
            if existing is not None:
                return existing
            session.add(
                SandboxPayout(
                    idempotency_key=request.idempotency_key,
                    user_id=request.user_id,
                    amount_minor=request.amount_minor,
                )
            )
            try:
                session.commit()
            except IntegrityError:
                # Another worker paid the same key at the same moment: one payout stands.
                session.rollback()
            found = self._find(session, request.idempotency_key)
            assert found is not None
            return found

    def set_plan(
        self, user_id: int, *, failures: int = 0, permanent: bool = False, delay_ms: int = 0
    ) -> None:
        """Make the next ``failures`` payouts of ``user_id`` fail (-1: all); ``permanent``
        failures are refusals, others outages. Successful payouts answer after ``delay_ms``."""
        with self._sessions() as session, session.begin():
            session.merge(
                SandboxPlan(
                    user_id=user_id, failures=failures, permanent=permanent, delay_ms=delay_ms
                )
            )

    def payouts_by_key(self) -> dict[str, int]:
        """Number of payouts per idempotency key (for reconcile)."""
        with self._sessions() as session:
            rows = session.execute(select(SandboxPayout.idempotency_key)).scalars()
            counts: dict[str, int] = {}
            for key in rows:
                counts[key] = counts.get(key, 0) + 1
            return counts

    def _follow_plan(self, user_id: int) -> int:
        """Fail as the user's plan says; return the delay (ms) to add to a success."""
        with self._sessions() as session, session.begin():
            plan = session.get(SandboxPlan, user_id)
            if plan is None:
                return 0
            delay_ms, failures, permanent = plan.delay_ms, plan.failures, plan.permanent
            if failures > 0:
                session.execute(
                    update(SandboxPlan)
                    .where(SandboxPlan.user_id == user_id)
                    .values(failures=SandboxPlan.failures - 1)
                )
        if failures == 0:
            return delay_ms
        if permanent:
            raise PermanentPayoutError(f"sandbox refused the payout of user {user_id}")
        raise TransientPayoutError(f"sandbox outage for the payout of user {user_id}")

    @staticmethod
    def _find(session: Session, key: str) -> str | None:
        found = session.execute(
            select(SandboxPayout.id).where(SandboxPayout.idempotency_key == key)
        ).scalar_one_or_none()
        return None if found is None else f"sandbox-{found}"


class HttpGateway:
    """POSTs payouts to a payment provider's HTTP API."""

    def __init__(self, url: str, timeout_s: float, client: httpx.Client | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"PAYOUT_URL must be an http(s) URL, not {url!r}")
        self._url = url
        self._client = client or httpx.Client(timeout=timeout_s)

    def payout(self, request: PayoutRequest) -> str:
        """POST the payout; the provider dedupes by the Idempotency-Key header."""
        body = {
            "user_id": request.user_id,
            "amount_minor": request.amount_minor,
            "reference": request.idempotency_key,
        }
        try:
            response = self._client.post(
                self._url, json=body, headers={"Idempotency-Key": request.idempotency_key}
            )
        except httpx.TimeoutException as exc:
            raise PayoutTimeoutError(f"payout gateway did not answer in time: {exc}") from exc
        except httpx.TransportError as exc:
            raise TransientPayoutError(f"payout gateway unreachable: {exc}") from exc
        if response.status_code >= 500:
            raise TransientPayoutError(f"payout gateway error {response.status_code}")
        if response.status_code >= 400:
            raise PermanentPayoutError(
                f"payout refused ({response.status_code}): {response.text[:200]}"
            )
        return str(response.json().get("id", ""))


def default_gateway(sessions: sessionmaker[Session]) -> PayoutGateway:
    """The gateway PAYOUT_GATEWAY names (sandbox unless set to http)."""
    settings = get_settings()
    if settings.payout_gateway == "http":
        if not settings.payout_url:
            raise ValueError("PAYOUT_GATEWAY=http needs PAYOUT_URL")
        return HttpGateway(settings.payout_url, settings.payout_timeout_s)
    return SandboxGateway(sessions)
