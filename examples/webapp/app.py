"""An async web app using the whole platform from a browser (Starlette on uvicorn).

* ``POST /api/sign-up`` and ``POST /api/sign-in`` (a name and a password, Argon2id
  hashes: :mod:`examples.webapp.accounts`) start a session: an HttpOnly, SameSite=Lax
  cookie (Secure under https). Sign-in attempts are rate limited per client address
  (the peer itself; X-Forwarded-For only from TRUSTED_PROXIES). ``POST /api/sign-out``
  ends the session, and with it its live sockets, wherever they are.
* Every signed-in call is rate limited per user (429 with Retry-After).
  ``GET /api/session``: who is signed in; ``GET /api/me``: the user and their
  balance; ``POST /api/deposits`` credits money through the ``process-deposit``
  job; ``POST /api/withdrawals`` reserves it and enqueues ``process-withdrawal``
  (5 s delay, priority 1); ``POST /api/withdrawals/<id>/cancel`` cancels one
  during its delay; ``GET /api/withdrawals`` lists the user's.
* ``WS /ws`` pushes the user's withdrawals as their jobs move (:mod:`.live`: one
  reader of the payment events per process, WEBSOCKET_MAX_PER_USER sockets a user).
* ``GET /api/cases``: the "active cases" list, cached and stampede-proof.

Every POST must be JSON (415 otherwise: a cross-site form or ``text/plain`` cannot
carry the cookie into a change) from an allowed Origin (403 otherwise), and so must
every WebSocket's Origin be (403 before the handshake). Every Redis call is
csgoflip_jobs.aio (the event loop never blocks on Redis); payments are PaymentService
(SQLAlchemy, sync), run in Starlette's thread pool. Bad input is a JSON error with a
message the page shows, never a 500.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket

from csgoflip_jobs import BrokerError, LockError, PaymentError, PaymentService, aio
from csgoflip_jobs.engine import tracing
from csgoflip_jobs.helpers.sessions import Session
from csgoflip_jobs.notifications.web_guard import (
    CLOSE_UNAUTHORIZED,
    SESSION_COOKIE,
    allowed_origins,
    hide_query_strings_in_logs,
    origin_allowed,
)
from csgoflip_jobs.settings import get_settings
from examples.webapp.accounts import AccountError, Accounts
from examples.webapp.live import LiveFeed

log = logging.getLogger(__name__)

PAGE = Path(__file__).resolve().parent / "static" / "index.html"
SIGN_IN_LIMIT, SIGN_IN_WINDOW_S = 5, 60
"""Sign-in and sign-up attempts allowed per client address and window."""
API_LIMIT, API_WINDOW_S = 1200, 60
"""API requests allowed per signed-in user and window."""
CASES = ["Chroma Case", "Prisma 2 Case", "Dreams & Nightmares Case", "Revolution Case"]

Handler = Callable[[Request], Awaitable[Response]]


class WebApp:
    """The app's services: sessions, rate limits, cache, accounts, the live feed."""

    def __init__(self, payments: PaymentService | None = None) -> None:
        settings = get_settings()
        self.payments = payments or PaymentService()
        self.sessions = aio.SessionService()
        self.limits = aio.RateLimitService()
        self.cache = aio.CacheService()
        self.accounts = Accounts(self.payments, aio.RedisService())
        self.live = LiveFeed(
            self.payments, settings.websocket_max_per_user, settings.channel_namespace
        )
        self.origins = allowed_origins()

    async def user_of(self, request: Request | WebSocket) -> Session | None:
        """The signed-in session of a request, if any."""
        return await self.sessions.validate(request.cookies.get(SESSION_COOKIE, ""))

    # --- pages and API -------------------------------------------------------------
    async def page(self, _request: Request) -> Response:
        return FileResponse(PAGE)

    async def sign_up(self, request: Request) -> Response:
        return await self._start_session(request, self.accounts.sign_up)

    async def sign_in(self, request: Request) -> Response:
        return await self._start_session(request, self.accounts.sign_in)

    async def _start_session(
        self, request: Request, check: Callable[[object, object], Awaitable[int]]
    ) -> Response:
        client = request.client.host if request.client else "unknown"
        limited = await self.limits.check(f"sign-in:{client}", SIGN_IN_LIMIT, SIGN_IN_WINDOW_S)
        if limited.limited:
            headers = {"Retry-After": str(limited.reset_after_s)}
            return _error("too many sign-in attempts; try again later", 429, headers)
        body = await _body(request)
        try:
            user_id = await check(body.get("name"), body.get("password"))
        except AccountError as exc:
            return _error(str(exc), exc.status)
        name = str(body["name"]).strip()
        session = await self.sessions.create(user_id, {"name": name})
        response = JSONResponse({"user_id": user_id, "name": name})
        response.set_cookie(SESSION_COOKIE, session.id, httponly=True, samesite="lax",
                            secure=request.url.scheme == "https")  # fmt: skip
        return response

    async def sign_out(self, request: Request, session: Session) -> Response:
        await self.sessions.invalidate(session.id)  # its sockets close, wherever they are
        response = JSONResponse({"signed_out": True})
        response.delete_cookie(SESSION_COOKIE)
        return response

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
        state = await run_in_threadpool(self.live.state_of, int(session.user_id))
        return JSONResponse(state["withdrawals"])

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
    async def socket(self, websocket: WebSocket) -> None:
        """Push the user's withdrawals whenever a payment job of theirs moves."""
        if not origin_allowed(websocket, self.origins):
            await websocket.close(code=1008)  # before accept: the handshake gets a 403
            return
        await websocket.accept()
        session = await self.user_of(websocket)
        if session is None:
            await websocket.close(code=CLOSE_UNAUTHORIZED, reason="sign in first")
            return
        await self.live.serve(websocket, session)


def posted(handler: Handler, app: WebApp) -> Handler:
    """A POST handler run only for a JSON body from an allowed Origin: a cross-site form
    (or ``text/plain``, which needs no preflight) gets 415, another Origin 403."""

    async def endpoint(request: Request) -> Response:
        if not origin_allowed(request, app.origins):
            return _error("not from this site", 403)
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind != "application/json":
            return _error("send JSON (Content-Type: application/json)", 415)
        return await handler(request)

    return endpoint


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
        hide_query_strings_in_logs()
        await web.live.start()
        yield
        await web.live.stop()
        await aio.close()

    def post(handler: Handler) -> Handler:
        return posted(handler, web)

    def user_post(handler: Callable[[WebApp, Request, Session], Awaitable[Response]]) -> Handler:
        return posted(signed_in(handler, web), web)

    routes = [
        Route("/", web.page),
        Route("/api/sign-up", post(web.sign_up), methods=["POST"]),
        Route("/api/sign-in", post(web.sign_in), methods=["POST"]),
        Route("/api/sign-out", user_post(WebApp.sign_out), methods=["POST"]),
        Route("/api/session", signed_in(WebApp.session, web)),
        Route("/api/me", signed_in(WebApp.me, web)),
        Route("/api/deposits", user_post(WebApp.deposit), methods=["POST"]),
        Route("/api/withdrawals", signed_in(WebApp.withdrawals, web)),
        Route("/api/withdrawals", user_post(WebApp.withdraw), methods=["POST"]),
        Route("/api/withdrawals/{withdrawal_id:int}/cancel", user_post(WebApp.cancel),
              methods=["POST"]),
        Route("/api/cases", web.cases),
        WebSocketRoute("/ws", web.socket),
    ]  # fmt: skip
    starlette = Starlette(routes=routes, lifespan=lifespan)
    if tracing.start("csgoflip-webapp"):
        # Each request a span, the parent of the jobs it adds (README "Tracing and logs").
        from opentelemetry.instrumentation.starlette import StarletteInstrumentor

        StarletteInstrumentor.instrument_app(starlette)
    return starlette
