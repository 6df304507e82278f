"""The WebSocket gateway: live notifications to browsers.

``csgoflip-jobs gateway`` serves this ASGI app (Starlette on uvicorn):

* ``/ws[?last_id=<notification id>]``: a page of an allowed Origin (WEBSOCKET_ORIGINS;
  by default only the gateway's own) opens the socket; any other is refused with 403
  before the handshake. The socket is signed in by the HttpOnly ``session`` cookie, or
  else by its first message, ``{"session": "<id>"}`` or ``{"ticket": "<ticket>"}``
  (SessionService.issue_ticket: valid 30 s, once), within 5 s; never by a URL. No
  valid session closes it with 4401, a user past WEBSOCKET_MAX_PER_USER sockets with
  4429. It first gets the notifications it missed (newer than ``last_id``), then live
  ones; when its session ends (sign-out) it is closed with 4401 at once.
* One process uses ONE Redis pub/sub connection for all its sockets
  (:class:`~csgoflip_jobs.notifications.hub.Hub`); each socket has a bounded queue:
  a slow one loses its own oldest messages, nobody else waits.
* ``POST /session`` trades a ticket (``{"ticket": ...}``, from an allowed Origin) for
  the session cookie; ``/demo`` is a small page showing a user's live events (opened
  as ``/demo#<ticket>``); ``/stats`` reports sockets, channels and drops;
  ``/healthz`` answers 503 while the pub/sub reader is down.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from pathlib import Path

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route, WebSocketRoute
from starlette.websockets import WebSocket, WebSocketDisconnect

from csgoflip_jobs.helpers.connection import make_bounded_client
from csgoflip_jobs.helpers.sessions import SessionService, fingerprint
from csgoflip_jobs.notifications.hub import PUBSUB_CLIENT_NAME, Client, Hub, client_name
from csgoflip_jobs.notifications.service import Notification, NotificationService
from csgoflip_jobs.notifications.web_guard import (
    CLOSE_TOO_MANY,
    CLOSE_UNAUTHORIZED,
    SESSION_COOKIE,
    allowed_origins,
    hide_query_strings_in_logs,
    origin_allowed,
    signed_in,
)
from csgoflip_jobs.settings import get_settings

__all__ = ["COMMAND_CLIENT_NAME", "PUBSUB_CLIENT_NAME", "Gateway", "client_name", "create_app"]

COMMAND_CLIENT_NAME = "csgoflip-gateway"
COMMAND_CONNECTIONS = 2
"""Connections for session checks and catch-up reads, however many clients connect."""

DEMO_PAGE = Path(__file__).resolve().parent / "static" / "demo.html"


class Gateway:
    """The app's state: the hub, and sync services run in a thread for Redis commands."""

    def __init__(self) -> None:
        settings = get_settings()
        commands = make_bounded_client(
            settings.broker_url, COMMAND_CONNECTIONS, client_name=client_name(COMMAND_CLIENT_NAME)
        )
        self.hub = Hub(settings.broker_url)
        self.sessions = SessionService(commands)
        self.notifications = NotificationService(commands)
        self.queue_size = settings.gateway_client_queue_size
        self.max_per_user = settings.websocket_max_per_user
        self.origins = allowed_origins()

    async def serve(self, websocket: WebSocket) -> None:
        """Check the Origin, sign in, send what the client missed, then stream live
        notifications until it leaves or its session ends."""
        if not origin_allowed(websocket, self.origins):
            await websocket.close(code=1008)  # before accept: the handshake gets a 403
            return
        await websocket.accept()
        session, first = await signed_in(websocket, self.sessions)
        if session is None or not isinstance(session.user_id, int):
            await websocket.close(code=CLOSE_UNAUTHORIZED, reason="invalid or missing session")
            return
        client = Client(session.user_id, fingerprint(session.id), self.queue_size)
        # Before the catch-up, so nothing published meanwhile is missed.
        if not await self.hub.add(client, self.max_per_user):
            await websocket.close(code=CLOSE_TOO_MANY, reason="too many live connections")
            return
        last_id = first.get("last_id") or websocket.query_params.get("last_id")
        try:
            sent = await self._catch_up(websocket, client, last_id)
            await _stream(websocket, client, sent)
        except WebSocketDisconnect:
            pass
        finally:
            await self.hub.remove(client)

    async def _catch_up(self, websocket: WebSocket, client: Client, last_id: object) -> set[str]:
        recent: list[Notification] = await run_in_threadpool(
            self.notifications.recent, client.user_id
        )
        missed: list[Notification] = []
        for notification in recent:  # newest first
            if notification.id == last_id:
                break
            missed.append(notification)
        for notification in reversed(missed):
            await websocket.send_text(notification.to_json())
        return {n.id for n in missed}

    async def session_cookie(self, request: Request) -> Response:
        """``POST /session {"ticket": ...}``: the session cookie for a ticket (the demo
        page's sign-in); 403 from an Origin not allowed, 401 for a bad ticket."""
        if not origin_allowed(request, self.origins) or "origin" not in request.headers:
            return JSONResponse({"error": "not from an allowed page"}, status_code=403)
        try:
            ticket = (await request.json()).get("ticket")
        except (ValueError, AttributeError):
            ticket = None
        session = await run_in_threadpool(self.sessions.redeem_ticket, ticket)
        if session is None:
            return JSONResponse({"error": "unknown, used or expired ticket"}, status_code=401)
        response = Response(status_code=204)
        response.set_cookie(SESSION_COOKIE, session.id, httponly=True, samesite="strict",
                            secure=request.url.scheme == "https")  # fmt: skip
        return response


async def _stream(websocket: WebSocket, client: Client, already_sent: set[str]) -> None:
    """Send queued messages until the client goes away or its session ends."""
    receiver = asyncio.create_task(_until_disconnect(websocket))
    ended = asyncio.create_task(client.ended.wait())
    try:
        while not receiver.done():
            getter = asyncio.create_task(client.queue.get())
            done, _ = await asyncio.wait(
                {getter, receiver, ended}, return_when=asyncio.FIRST_COMPLETED
            )
            if getter not in done:
                getter.cancel()
                if ended in done:
                    await websocket.close(code=CLOSE_UNAUTHORIZED, reason="session ended")
                break
            message = getter.result()
            if already_sent and json.loads(message).get("id") in already_sent:
                continue  # sent during catch-up already
            await websocket.send_text(message)
    finally:
        receiver.cancel()
        ended.cancel()


async def _until_disconnect(websocket: WebSocket) -> None:
    while True:
        message = await websocket.receive()
        if message["type"] == "websocket.disconnect":
            return


def create_app() -> Starlette:
    """The gateway's ASGI app."""
    gateway = Gateway()

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        hide_query_strings_in_logs()
        await gateway.hub.start()
        yield
        await gateway.hub.close()

    async def stats(_request: Request) -> JSONResponse:
        return JSONResponse(gateway.hub.stats())

    async def demo(_request: Request) -> HTMLResponse:
        return HTMLResponse(DEMO_PAGE.read_text())

    async def health(_request: Request) -> JSONResponse:
        healthy = gateway.hub.healthy
        return JSONResponse({"ok": healthy}, status_code=200 if healthy else 503)

    return Starlette(
        routes=[
            WebSocketRoute("/ws", gateway.serve),
            Route("/session", gateway.session_cookie, methods=["POST"]),
            Route("/stats", stats),
            Route("/demo", demo),
            Route("/healthz", health),
        ],
        lifespan=lifespan,
    )
