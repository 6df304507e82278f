"""The web edge shared by the gateway and web apps on the platform: which pages may open
a WebSocket or POST (Origin), signing a WebSocket in without a session id in its URL,
and access logs that never hold a query string.

Invariants: a browser's request from an Origin not allowed is refused before anything
is done for it (a WebSocket with 403, before the handshake); a session id is taken from
the HttpOnly ``session`` cookie or from the socket's first message, never from a URL;
no access log line carries a query string.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any, TypeGuard

from starlette.requests import HTTPConnection
from starlette.websockets import WebSocket, WebSocketDisconnect

from csgoflip_jobs.helpers.sessions import AsyncSessionService, Session, SessionService
from csgoflip_jobs.settings import get_settings

SESSION_COOKIE = "session"
SIGN_IN_TIMEOUT_S = 5.0
"""How long a socket signed in by its first message may take to send it."""

CREDENTIAL_MAX_CHARS = 256
"""Longest session id or ticket read from a first message."""

CLOSE_UNAUTHORIZED = 4401
CLOSE_TOO_MANY = 4429


def allowed_origins() -> frozenset[str]:
    """WEBSOCKET_ORIGINS as a set (empty: only each page's own origin)."""
    return get_settings().websocket_origin_set


def origin_allowed(connection: HTTPConnection, allowed: frozenset[str]) -> bool:
    """True when the request's Origin may act with the user's cookie: none sent (not a
    browser), one of ``allowed``, or, when ``allowed`` is empty, the page's own origin
    (the scheme and Host the request came to)."""
    origin = connection.headers.get("origin")
    if origin is None:
        return True
    if allowed:
        return origin in allowed
    scheme = {"ws": "http", "wss": "https"}.get(connection.url.scheme, connection.url.scheme)
    return origin == f"{scheme}://{connection.headers.get('host', '')}"


async def signed_in(
    websocket: WebSocket, sessions: SessionService | AsyncSessionService
) -> tuple[Session | None, dict[str, Any]]:
    """The accepted socket's session, from its ``session`` cookie or else from its first
    message (``{"session": id}`` or ``{"ticket": t}``, within SIGN_IN_TIMEOUT_S), and
    that message (``{}`` for a cookie). None when neither names a live session."""
    cookie = websocket.cookies.get(SESSION_COOKIE)
    if cookie:
        return await _call(sessions, "validate", cookie), {}
    try:
        text = await asyncio.wait_for(websocket.receive_text(), SIGN_IN_TIMEOUT_S)
        first = json.loads(text)
    except (TimeoutError, ValueError, KeyError, WebSocketDisconnect):
        return None, {}
    if not isinstance(first, dict):
        return None, {}
    ticket, session_id = first.get("ticket"), first.get("session")
    if _credential(ticket):
        return await _call(sessions, "redeem_ticket", ticket), first
    if _credential(session_id):
        return await _call(sessions, "validate", session_id), first
    return None, first


def _credential(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and 0 < len(value) <= CREDENTIAL_MAX_CHARS


async def _call(sessions: SessionService | AsyncSessionService, name: str, arg: str) -> Any:
    """A session call of either API: the asyncio one awaited, the sync one in a thread
    (the event loop never waits on Redis)."""
    method = getattr(sessions, name)
    if isinstance(sessions, AsyncSessionService):
        return await method(arg)
    return await asyncio.to_thread(method, arg)


class NoQueryStrings(logging.Filter):
    """Drops the query string from the paths uvicorn logs (its access lines, and the
    ``"WebSocket /ws?..." [accepted]`` lines): whatever a client puts in a URL (a
    session id by mistake) never reaches a log."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_without_query(arg) for arg in record.args)
        return True


def _without_query(value: object) -> object:
    if isinstance(value, str) and value.startswith("/") and "?" in value:
        return value.split("?", 1)[0]
    return value


UVICORN_LOGGERS = ("uvicorn.access", "uvicorn.error")


def hide_query_strings_in_logs() -> None:
    """Install :class:`NoQueryStrings` on uvicorn's loggers (once uvicorn has configured
    its logging: call it from the app's lifespan)."""
    for name in UVICORN_LOGGERS:
        logger = logging.getLogger(name)
        if not any(isinstance(f, NoQueryStrings) for f in logger.filters):
            logger.addFilter(NoQueryStrings())
