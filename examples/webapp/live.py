"""The example's live page: one reader of the payment queue's events for every socket of
the process, sockets capped per user and closed when their session ends.

Invariants: the process reads each payment event once, whatever the number of open
sockets (one ``XREAD`` loop, one pub/sub connection for session endings); an event
costs database reads only for a user with an open socket, once for all of that user's
sockets; a socket whose session ends (sign-out, anywhere) is closed with 4401 at once.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from starlette.concurrency import run_in_threadpool
from starlette.websockets import WebSocket, WebSocketDisconnect

from csgoflip_jobs import PaymentService, aio, keys
from csgoflip_jobs.helpers.sessions import Session, fingerprint
from csgoflip_jobs.notifications.web_guard import CLOSE_TOO_MANY, CLOSE_UNAUTHORIZED
from csgoflip_jobs.payments.models import MAX_ID, Deposit, Withdrawal

MOVES = frozenset({"active", "completed", "failed", "removed"})
"""Events after which a withdrawal's status or the balance may have changed."""

PAYMENT_JOB = re.compile(r"^(withdrawal|deposit):(\d{1,10})(?::sweep)?$")

log = logging.getLogger(__name__)


@dataclass(eq=False)
class LiveSocket:
    """One open socket of a signed-in user."""

    websocket: WebSocket
    user_id: int
    session_fingerprint: str
    ended: asyncio.Event = field(default_factory=asyncio.Event)


class LiveFeed:
    """Pushes ``{"withdrawals", "balance"}`` to a user's sockets whenever one of the
    user's payment jobs moves."""

    def __init__(self, payments: PaymentService, max_per_user: int, namespace: str) -> None:
        self._payments = payments
        self._max_per_user = max_per_user
        self._ended_channel = keys.sessions_ended_channel(namespace)
        self._sockets: dict[int, set[LiveSocket]] = {}
        self._tasks: list[asyncio.Task[None]] = []
        self._endings = aio.RedisService()

    async def start(self) -> None:
        """Start the process's one event reader and session-endings subscription."""
        await self._endings.subscribe(self._ended_channel, self._session_ended)
        self._tasks.append(asyncio.create_task(self._read(), name="webapp-payment-events"))

    async def stop(self) -> None:
        """Stop reading."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        await self._endings.close()

    def sockets(self) -> int:
        """Open sockets of this process."""
        return sum(len(sockets) for sockets in self._sockets.values())

    async def serve(self, websocket: WebSocket, session: Session) -> None:
        """Keep the accepted socket of ``session`` until it leaves or the session ends."""
        user_id = int(session.user_id)
        mine = self._sockets.setdefault(user_id, set())
        if len(mine) >= self._max_per_user:
            await websocket.close(code=CLOSE_TOO_MANY, reason="too many live connections")
            return
        socket = LiveSocket(websocket, user_id, fingerprint(session.id))
        mine.add(socket)
        try:
            await _until_gone_or_ended(socket)
        finally:
            mine.discard(socket)
            if not mine:
                self._sockets.pop(user_id, None)

    def _session_ended(self, _channel: str, message: str) -> None:
        for sockets in self._sockets.values():
            for socket in sockets:
                if socket.session_fingerprint == message:
                    socket.ended.set()

    async def _read(self) -> None:
        events = aio.QueueEvents("payment")
        while True:
            try:
                async for event in events.listen("$", block_s=1.0):
                    await self._handle(event)
            except Exception:  # a Redis or database hiccup must not end live updates
                log.exception("live feed: reading the payment events failed; again in 1 s")
                await asyncio.sleep(1.0)

    async def _handle(self, event: dict[str, Any]) -> None:
        found = PAYMENT_JOB.match(event.get("job_id") or "")
        if not found or event.get("event") not in MOVES or not self._sockets:
            return
        row_id = int(found.group(2))
        if row_id > MAX_ID:
            return
        user_id = await run_in_threadpool(self._owner, found.group(1), row_id)
        sockets = list(self._sockets.get(user_id, ())) if user_id is not None else []
        if user_id is None or not sockets:
            return
        update = await run_in_threadpool(self.state_of, user_id)
        for socket in sockets:
            with contextlib.suppress(Exception):  # a socket that just left
                await socket.websocket.send_json(update)

    def _owner(self, kind: str, row_id: int) -> int | None:
        model = Withdrawal if kind == "withdrawal" else Deposit
        with self._payments.sessions() as db:
            return db.execute(select(model.user_id).where(model.id == row_id)).scalar()

    def state_of(self, user_id: int) -> dict[str, Any]:
        """The user's withdrawals and balance, as the page shows them."""
        with self._payments.sessions() as db:
            found = db.execute(
                select(Withdrawal).where(Withdrawal.user_id == user_id).order_by(Withdrawal.id)
            ).scalars()
            rows = [{"withdrawal_id": w.id, "amount": w.amount_minor, "status": w.status}
                    for w in found]  # fmt: skip
        return {"withdrawals": rows, "balance": self._payments.get_balance(user_id)}


async def _until_gone_or_ended(socket: LiveSocket) -> None:
    receiving = asyncio.create_task(_drain(socket.websocket))
    ended = asyncio.create_task(socket.ended.wait())
    try:
        done, _ = await asyncio.wait({receiving, ended}, return_when=asyncio.FIRST_COMPLETED)
        if ended in done:
            await socket.websocket.close(code=CLOSE_UNAUTHORIZED, reason="session ended")
    finally:
        receiving.cancel()
        ended.cancel()


async def _drain(websocket: WebSocket) -> None:
    """Read (and ignore) what the page sends, until it goes."""
    with contextlib.suppress(WebSocketDisconnect):
        while True:
            message = await websocket.receive()
            if message["type"] == "websocket.disconnect":
                return
