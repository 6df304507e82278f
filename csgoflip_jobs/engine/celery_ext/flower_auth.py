"""Who may use Flower, and for what: the platform's check of every Flower request.

Replaces Flower's basic-auth check (``BaseHandler.get_current_user``) for every page and
API, Flower's and the Jobs board's:

* FLOWER_USER / FLOWER_PASSWORD may do everything; FLOWER_VIEWER_USER /
  FLOWER_VIEWER_PASSWORD may only read (any POST, Flower's own revoke and shutdown
  included, is a 403); an API token (``csgoflip-jobs flower-token``: kept hashed in
  Redis, revoked at once) opens ``/api/jobs`` only, as a bearer token, read-only or
  not. The name of whoever acts is ``current_user`` (the Jobs board's audit lines).
* Credentials are compared as UTF-8 bytes, so a non-ASCII one is a 401, never a 500.
* Without credentials (outside production only) Flower answers only requests from
  the loopback to a loopback Host: a page of another site cannot reach it through
  DNS rebinding, nor another machine through the network.
* Every page says ``X-Frame-Options: DENY`` and ``frame-ancestors 'none'``: no page
  of Flower can be framed and clicked into pause, retry or remove.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import ipaddress
import json
import secrets
from dataclasses import dataclass
from functools import cache
from typing import Any

from tornado.web import HTTPError

from csgoflip_jobs import keys
from csgoflip_jobs.helpers.connection import as_text, broker_client
from csgoflip_jobs.settings import get_settings, revealed

READS = frozenset({"GET", "HEAD", "OPTIONS"})
LOOPBACK_NAMES = frozenset({"localhost", "127.0.0.1", "::1"})
TOKEN_BYTES = 32
ANONYMOUS = "anonymous (no FLOWER_USER: loopback only)"


@dataclass(frozen=True)
class Principal:
    """Who a request acts as."""

    name: str
    read_only: bool


@dataclass(frozen=True)
class Credentials:
    """The users of FLOWER_USER / FLOWER_PASSWORD and FLOWER_VIEWER_USER / _PASSWORD."""

    users: tuple[tuple[str, bytes, Principal], ...]

    @property
    def anonymous(self) -> bool:
        """True when no user is configured: Flower answers the loopback only."""
        return not self.users


@cache
def configured() -> Credentials:
    """The credentials the settings name (read once per process)."""
    settings = get_settings()
    users = []
    for user, password, read_only in (
        (settings.flower_user, settings.flower_password, False),
        (settings.flower_viewer_user, settings.flower_viewer_password, True),
    ):
        if user and password:
            users.append((user, revealed(password).encode(), Principal(user, read_only)))
    return Credentials(tuple(users))


def current_user(handler: Any) -> str:
    """The name the request acts as; HTTPError 401 (no or wrong credentials) or 403 (a
    reader's POST, or an anonymous request that is not loopback to loopback)."""
    credentials = configured()
    request = handler.request
    if credentials.anonymous:
        if not (_loopback(request.remote_ip) and _loopback_host(request.host)):
            raise HTTPError(403, "Flower without credentials answers only on 127.0.0.1")
        return ANONYMOUS
    api_jobs = _is_api_jobs(request.path, handler.application.options.url_prefix)
    principal = _from_header(request.headers.get("Authorization", ""), credentials, api_jobs)
    if principal is None:
        raise HTTPError(401)
    if principal.read_only and request.method not in READS:
        raise HTTPError(403, f"{principal.name} may only read")
    return principal.name


def _is_api_jobs(path: str, url_prefix: str | None) -> bool:
    root = f"/{url_prefix.strip('/')}/api/jobs" if url_prefix else "/api/jobs"
    return path == root or path.startswith(f"{root}/")


def _from_header(header: str, credentials: Credentials, api_jobs: bool) -> Principal | None:
    kind, _, value = header.partition(" ")
    if kind == "Basic":
        try:
            user, _, password = base64.b64decode(value, validate=True).partition(b":")
        except (binascii.Error, ValueError):
            return None
        for name, expected, principal in credentials.users:
            # Both compared, in constant time, as bytes (hmac refuses non-ASCII str).
            if hmac.compare_digest(user, name.encode()) & hmac.compare_digest(password, expected):
                return principal
        return None
    if kind == "Bearer" and api_jobs:
        return token_principal(value.strip())
    return None


def token_principal(token: str) -> Principal | None:
    """Who an API token stands for; None for an unknown or revoked one."""
    if not token or len(token) > 128:
        return None
    raw = broker_client().hget(keys.FLOWER_TOKENS_KEY, _digest(token))
    if raw is None:
        return None
    record = json.loads(as_text(raw))
    return Principal(f"token {record['name']}", bool(record.get("read_only")))


def create_token(name: str, read_only: bool) -> str:
    """A new API token for ``/api/jobs`` named ``name`` (shown once: only its hash is
    kept); replaces a token of that name."""
    revoke_token(name)
    token = secrets.token_urlsafe(TOKEN_BYTES)
    record = json.dumps({"name": name, "read_only": read_only})
    broker_client().hset(keys.FLOWER_TOKENS_KEY, _digest(token), record)
    return token


def revoke_token(name: str) -> bool:
    """Revoke the API token named ``name``; False when there is none."""
    client = broker_client()
    for digest, raw in client.hgetall(keys.FLOWER_TOKENS_KEY).items():
        if json.loads(as_text(raw))["name"] == name:
            return bool(client.hdel(keys.FLOWER_TOKENS_KEY, digest))
    return False


def token_names() -> list[tuple[str, bool]]:
    """(name, read-only) of every API token."""
    raw = broker_client().hgetall(keys.FLOWER_TOKENS_KEY).values()
    records = [json.loads(as_text(r)) for r in raw]
    return sorted((r["name"], bool(r.get("read_only"))) for r in records)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _loopback(address: str | None) -> bool:
    try:
        return ipaddress.ip_address(address or "").is_loopback
    except ValueError:
        return False


def _loopback_host(host: str) -> bool:
    name = host.rsplit(":", 1)[0] if host.count(":") == 1 else host
    return name.strip("[]").split("]")[0] in LOOPBACK_NAMES


def install() -> None:
    """Put :func:`current_user` and the frame headers on Flower's BaseHandler (once);
    Flower's own OAuth login (``--auth``) keeps Flower's check."""
    from flower.views import BaseHandler

    if getattr(BaseHandler.get_current_user, "csgoflip_checked", False):
        return
    flowers_user, flowers_headers = BaseHandler.get_current_user, BaseHandler.set_default_headers

    def get_current_user(self: Any) -> Any:
        if self.application.options.auth:
            return flowers_user(self)
        return current_user(self)

    def set_default_headers(self: Any) -> None:
        flowers_headers(self)
        self.set_header("X-Frame-Options", "DENY")
        self.set_header("Content-Security-Policy", "frame-ancestors 'none'")

    get_current_user.csgoflip_checked = True  # type: ignore[attr-defined]
    BaseHandler.get_current_user = get_current_user
    BaseHandler.set_default_headers = set_default_headers
