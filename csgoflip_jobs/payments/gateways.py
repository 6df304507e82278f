"""Payout gateways: where withdrawals are paid, behind one small interface.

Every payout carries an idempotency key (``withdrawal:<id>``); a gateway that
sees the same key twice pays once and returns the first payout again. That is
what makes a redelivered or duplicated withdrawal job safe.

* ``sandbox`` (default) records each payout in its own table, with optional
  failure injection and delays (``SandboxGateway.set_plan``) for demos and tests.
* ``http`` POSTs to PAYOUT_URL with an ``Idempotency-Key`` header. Once the request
  may have reached the provider, only an explicit refusal means no money moved:

  ========================================  ===========================================
  provider's answer                         outcome
  ========================================  ===========================================
  2xx, whatever the body                    paid (reference: the body's ``id`` if any)
  400, 401, 402, 403, 404, 422              refused: nothing paid, funds returned
  no connection (refused, DNS, connect      not sent: retried; the last try returns
  timeout)                                  the funds
  any other status (3xx, 408, 409, 429,     unknown: retried with the same key; the
  5xx), no answer in time, a dropped        last try leaves the withdrawal uncertain
  connection, an unreadable answer          for an operator, never refunded
  ========================================  ===========================================
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Protocol

import httpx
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from csgoflip_jobs.payments.errors import (
    PayoutNotSentError,
    PayoutTimeoutError,
    PermanentPayoutError,
    TransientPayoutError,
)
from csgoflip_jobs.payments.models import SandboxPayout, SandboxPlan
from csgoflip_jobs.settings import get_settings

REFUSAL_STATUSES = frozenset({400, 401, 402, 403, 404, 422})
"""The provider's answers that refuse a payout without making it (the request was
rejected before any money moved)."""

UNKNOWN_REFERENCE = "unknown"
"""The reference recorded for a payout the provider accepted without naming it."""

REFERENCE_MAX_CHARS = 128
"""Longest payout reference kept (the column's size)."""

log = logging.getLogger(__name__)


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
        raise PayoutNotSentError(f"sandbox outage for the payout of user {user_id}")

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
        """POST the payout; the provider dedupes by the Idempotency-Key header. Which
        answer means what: the module's table."""
        body = {
            "user_id": request.user_id,
            "amount_minor": request.amount_minor,
            "reference": request.idempotency_key,
        }
        try:
            response = self._client.post(
                self._url, json=body, headers={"Idempotency-Key": request.idempotency_key}
            )
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            # No connection was made: no byte of the request left this process.
            raise PayoutNotSentError(f"payout gateway unreachable: {exc!r}") from exc
        except httpx.TimeoutException as exc:
            raise PayoutTimeoutError(f"payout gateway did not answer in time: {exc!r}") from exc
        except httpx.HTTPError as exc:
            # Sent, at least in part, and no whole answer: the provider may have paid.
            raise TransientPayoutError(f"payout gateway answer lost: {exc!r}") from exc
        return _outcome(response)


def _outcome(response: httpx.Response) -> str:
    """The payout's reference for a 2xx; raise for any other answer (see the table)."""
    status = response.status_code
    if 200 <= status < 300:
        return _reference(response)
    if status in REFUSAL_STATUSES:
        raise PermanentPayoutError(f"payout refused ({status}): {response.text[:200]!r}")
    # A redirect, a conflict, a rate limit or a server error says nothing certain about
    # the payout: retrying with the same key is safe, refunding is not.
    raise TransientPayoutError(f"payout gateway answered {status}: outcome unknown")


def _reference(response: httpx.Response) -> str:
    """The body's ``id`` when the body is a JSON object that has one. A 2xx is a payout
    made whatever its body says, so an empty or unreadable body is still paid."""
    try:
        payload = response.json()
    except ValueError:
        payload = None
    found = payload.get("id") if isinstance(payload, dict) else None
    if isinstance(found, str | int) and not isinstance(found, bool) and str(found):
        return str(found)[:REFERENCE_MAX_CHARS]
    log.warning("payout gateway answered %s without a payout id; recorded as %r",
                response.status_code, UNKNOWN_REFERENCE)  # fmt: skip
    return UNKNOWN_REFERENCE


def default_gateway(sessions: sessionmaker[Session]) -> PayoutGateway:
    """The gateway PAYOUT_GATEWAY names (sandbox unless set to http)."""
    settings = get_settings()
    if settings.payout_gateway == "http":
        if not settings.payout_url:
            raise ValueError("PAYOUT_GATEWAY=http needs PAYOUT_URL")
        return HttpGateway(settings.payout_url, settings.payout_timeout_s)
    return SandboxGateway(sessions)
