"""An async web app using the whole platform from a browser (Starlette on uvicorn).

* ``POST /api/sign-in`` creates a session (an HttpOnly cookie); sign-in attempts are
  rate limited per IP address (429 with Retry-After).
* Every signed-in call is rate limited per user (429 with Retry-After).
  ``GET /api/session``: who is signed in; ``GET /api/me``: the user and their
  balance; ``POST /api/deposits`` credits money through the ``process-deposit``
  job; ``POST /api/withdrawals`` reserves it and enqueues ``process-withdrawal``
  (5 s delay, priority 1); ``POST /api/withdrawals/<id>/cancel`` cancels one
  during its delay; ``GET /api/withdrawals`` lists the user's.
* ``WS /ws`` pushes each of the user's withdrawals as its job moves (completed,
  failed, cancelled), read from the payment queue's event stream.
* ``GET /api/cases``: the "active cases" list, cached and stampede-proof.

Every Redis call is csgoflip_jobs.aio (the event loop never blocks on Redis);
payments are PaymentService (SQLAlchemy, sync), run in Starlette's thread pool.
Bad input (unknown user, a negative or too large amount) is a JSON error with
a message the page shows, never a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from csgoflip_jobs import BrokerError, LockError, PaymentError, PaymentService, aio
from csgoflip_jobs.helpers.sessions import Session

log = logging.getLogger(__name__)

PAGE = Path(__file__).resolve().parent / "static" / "index.html"
SESSION_COOKIE = "session"
SIGN_IN_LIMIT, SIGN_IN_WINDOW_S = 5, 60
"""Sign-in attempts allowed per IP address and window."""
API_LIMIT, API_WINDOW_S = 1200, 60
"""API requests allowed per signed-in user and window."""
USERS_KEY = "examples:webapp:users"
"""Hash of user names to payment user ids (the example's own accounts)."""
NAME = re.compile(r"[^\W][\w .-]{0,31}")
"""A player's name: letters (any alphabet), digits, spaces, '.', '_' and '-'."""
CASES = ["Chroma Case", "Prisma 2 Case", "Dreams & Nightmares Case", "Revolution Case"]

Handler = Callable[[Request], Awaitable[Response]]


class WebApp:
    """The app's services: sessions, rate limits, cache, the payment queue's events."""

    def __init__(self, payments: PaymentService | None = None) -> None:
        self.payments = payments or PaymentService()
        self.sessions = aio.SessionService()
        self.limits = aio.RateLimitService()
        self.cache = aio.CacheService()
        self.redis = aio.RedisService()

    async def user_of(self, request: Request | WebSocket) -> Session | None:
        """The signed-in session of a request, if any."""
        return await self.sessions.validate(request.cookies.get(SESSION_COOKIE, ""))

    # --- pages and API -------------------------------------------------------------
    async def page(self, _request: Request) -> Response:
        return FileResponse(PAGE)

    async def sign_in(self, request: Request) -> Response:
        client = request.client.host if request.client else "unknown"
        check = await self.limits.check(f"sign-in:{client}", SIGN_IN_LIMIT, SIGN_IN_WINDOW_S)
        if check.limited:
            headers = {"Retry-After": str(check.reset_after_s)}
            return _error("too many sign-in attempts; try again later", 429, headers)
        name = str((await _body(request)).get("name", "")).strip()
        if not NAME.fullmatch(name):
            return _error("a name of 1 to 32 letters, digits, spaces, '.', '_' or '-', please")
        user_id = await self._user_named(name)
        session = await self.sessions.create(user_id, {"name": name})
        response = JSONResponse({"user_id": user_id, "name": name})
        response.set_cookie(SESSION_COOKIE, session.id, httponly=True, samesite="lax")
        return response

    async def _user_named(self, name: str) -> int:
        known = await self.redis.hget(USERS_KEY, name)
        if known is not None:
            return int(known)
        user_id = await run_in_threadpool(self.payments.create_user)
        await self.redis.hset(USERS_KEY, name, str(user_id))
        return user_id

    async def session(self, request: Request, session: Session) -> Response:
        return JSONResponse({"user_id": session.user_id, "name": session.metadata.get("name")})

    async def me(self, request: Request, session: Session) -> Response:
        balance = await run_in_threadpool(self.payments.get_balance, int(session.user_id))
        return JSONResponse({"user_id": session.user_id, "balance": balance,
                             "name": session.metadata.get("name")})  # fmt: skip

    async def deposit(self, request: Request, session: Session) -> Response:
        amount: Any = (await _body(request)).get("amount")  # checked by PaymentService
        deposit_id = await run_in_threadpool(
            self.payments.create_deposit, int(session.user_id), amount
        )
        await run_in_threadpool(self.payments.schedule_deposit_processing, deposit_id)
        return JSONResponse({"deposit_id": deposit_id})

    async def withdraw(self, request: Request, session: Session) -> Response:
        amount: Any = (await _body(request)).get("amount")  # checked by PaymentService
        withdrawal_id = await run_in_threadpool(
            self.payments.request_withdrawal, int(session.user_id), amount
        )
        return JSONResponse({"withdrawal_id": withdrawal_id, "status": "pending"})

    async def cancel(self, request: Request, session: Session) -> Response:
        withdrawal_id = int(request.path_params["withdrawal_id"])
        await self._own_withdrawal(session, withdrawal_id)
        cancelled = await run_in_threadpool(self.payments.cancel_withdrawal, withdrawal_id)
        status = (await run_in_threadpool(self.payments.get_withdrawal, withdrawal_id)).status
        if not cancelled:
            return _error(f"withdrawal {withdrawal_id} is {status}: too late to cancel", 409)
        return JSONResponse({"withdrawal_id": withdrawal_id, "status": status})

    async def withdrawals(self, request: Request, session: Session) -> Response:
        rows = await run_in_threadpool(self._withdrawals_of, int(session.user_id))
        return JSONResponse(rows)

    def _withdrawals_of(self, user_id: int) -> list[dict[str, Any]]:
        from sqlalchemy import select

        from csgoflip_jobs.payments.models import Withdrawal

        with self.payments.sessions() as db:
            found = db.execute(
                select(Withdrawal).where(Withdrawal.user_id == user_id).order_by(Withdrawal.id)
            ).scalars()
            return [{"withdrawal_id": w.id, "amount": w.amount_minor, "status": w.status}
                    for w in found]  # fmt: skip

    async def _own_withdrawal(self, session: Session, withdrawal_id: int) -> None:
        withdrawal = await run_in_threadpool(self.payments.get_withdrawal, withdrawal_id)
        if withdrawal.user_id != session.user_id:
            raise PaymentError(f"unknown withdrawal {withdrawal_id}")

    async def cases(self, _request: Request) -> Response:
        async def active_cases() -> list[str]:
            await asyncio.sleep(0.05)  # the query this cache spares the database
            return CASES

        return JSONResponse(await self.cache.cached("active-cases", 30, active_cases))

    # --- live updates ------------------------------------------------------------------
    async def live(self, websocket: WebSocket) -> None:
        """Push the user's withdrawals whenever a payment job of theirs moves."""
        await websocket.accept()
        session = await self.user_of(websocket)
        if session is None:
            await websocket.close(code=4401, reason="sign in first")
            return
        events = aio.QueueEvents("payment")
        watcher = asyncio.create_task(self._watch(websocket, int(session.user_id), events))
        try:
            while True:
                await websocket.receive_text()
        except WebSocketDisconnect:
            pass
        finally:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher

    async def _watch(self, websocket: WebSocket, user_id: int, events: Any) -> None:
        async for event in events.listen("$", block_s=1.0):
            job_id = event.get("job_id") or ""
            if job_id.startswith(("withdrawal:", "deposit:")) and event["event"] in _MOVES:
                rows = await run_in_threadpool(self._withdrawals_of, user_id)
                balance = await run_in_threadpool(self.payments.get_balance, user_id)
                await websocket.send_json({"withdrawals": rows, "balance": balance})


_MOVES = frozenset({"active", "completed", "failed", "removed"})
"""Events after which a withdrawal's status or the balance may have changed (a
demo's simplification: every payment job's event re-reads the user's rows)."""


def signed_in(
    handler: Callable[[WebApp, Request, Session], Awaitable[Response]], app: WebApp
) -> Handler:
    """A handler that needs a session (401 without) within the user's API limit (429
    beyond), with payment errors as 400s, a busy balance as 409 and Redis trouble as 503
    (each with a message, never a 500)."""

    async def endpoint(request: Request) -> Response:
        session = await app.user_of(request)
        if session is None:
            return _error("sign in first", 401)
        check = await app.limits.check(f"api:{session.user_id}", API_LIMIT, API_WINDOW_S)
        if check.limited:
            headers = {"Retry-After": str(check.reset_after_s)}
            return _error("too many requests; try again later", 429, headers)
        try:
            return await handler(app, request, session)
        except PaymentError as exc:
            return _error(str(exc))
        except LockError:
            return _error("your balance is busy with another change; try again", 409)
        except BrokerError as exc:
            log.warning("%s %s: %s", request.method, request.url.path, exc)
            return _error("the platform cannot take this now; try again shortly", 503)

    return endpoint


async def _body(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _error(message: str, status: int = 400, headers: dict[str, str] | None = None) -> Response:
    return JSONResponse({"error": message}, status_code=status, headers=headers)


def create_app(payments: PaymentService | None = None) -> Starlette:
    """The example's ASGI app."""
    web = WebApp(payments)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        yield
        await aio.close()

    routes = [
        Route("/", web.page),
        Route("/api/sign-in", web.sign_in, methods=["POST"]),
        Route("/api/session", signed_in(WebApp.session, web)),
        Route("/api/me", signed_in(WebApp.me, web)),
        Route("/api/deposits", signed_in(WebApp.deposit, web), methods=["POST"]),
        Route("/api/withdrawals", signed_in(WebApp.withdrawals, web)),
        Route("/api/withdrawals", signed_in(WebApp.withdraw, web), methods=["POST"]),
        Route("/api/withdrawals/{withdrawal_id:int}/cancel", signed_in(WebApp.cancel, web),
              methods=["POST"]),
        Route("/api/cases", web.cases),
        WebSocketRoute("/ws", web.live),
    ]  # fmt: skip
    return Starlette(routes=routes, lifespan=lifespan)
