"""The example's accounts: a name and a password, hashed with Argon2id (argon2-cffi).

Invariants: a password is stored only as its Argon2id hash; a sign-in with a wrong
password (or an unknown name) is refused the same way, after the same work; a name is
taken once (HSETNX), so signing up as an existing name never yields its account.
"""

from __future__ import annotations

import json
import re

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.concurrency import run_in_threadpool

from csgoflip_jobs import PaymentError, PaymentService, aio

USERS_KEY = "examples:webapp:users"
"""Hash of user names to ``{"user_id", "password_hash"}`` (the example's own accounts)."""

NAME = re.compile(r"[^\W][\w .-]{0,31}")
"""A player's name: letters (any alphabet), digits, spaces, '.', '_' and '-'."""

PASSWORD_MIN_CHARS, PASSWORD_MAX_CHARS = 8, 128

_HASHER = PasswordHasher()
_UNKNOWN_NAME_HASH = _HASHER.hash("a password nobody has")
"""Checked against for an unknown name, so its refusal costs what a wrong password does."""


class AccountError(PaymentError):
    """A sign-up or sign-in the example refuses; the message says why, ``status`` is the
    HTTP answer."""

    status = 400


class NameTakenError(AccountError):
    """Another account has the name."""

    status = 409


class WrongCredentialsError(AccountError):
    """No account has this name and password."""

    status = 401


class Accounts:
    """Sign-up and sign-in over the example's user hash."""

    def __init__(self, payments: PaymentService, redis: aio.RedisService) -> None:
        self._payments = payments
        self._redis = redis

    async def sign_up(self, name: object, password: object) -> int:
        """A new account; its payment user's id. AccountError for a bad or taken name or
        a bad password."""
        name, password = _checked(name, password)
        if await self._redis.hget(USERS_KEY, name) is not None:
            raise NameTakenError(f"the name {name!r} is taken")
        password_hash = await run_in_threadpool(_HASHER.hash, password)
        user_id = await run_in_threadpool(self._payments.create_user)
        record = json.dumps({"user_id": user_id, "password_hash": password_hash})
        if not await self._redis.client.hsetnx(USERS_KEY, name, record):
            raise NameTakenError(f"the name {name!r} is taken")  # taken meanwhile
        return user_id

    async def sign_in(self, name: object, password: object) -> int:
        """The account's payment user id; AccountError when the name and password do not
        match an account."""
        name, password = _checked(name, password)
        raw = await self._redis.hget(USERS_KEY, name)
        record = json.loads(raw) if raw else {"password_hash": _UNKNOWN_NAME_HASH}
        if not await run_in_threadpool(_matches, record["password_hash"], password) or not raw:
            raise WrongCredentialsError("wrong name or password")
        return int(record["user_id"])


def _matches(password_hash: str, password: str) -> bool:
    try:
        return _HASHER.verify(password_hash, password)
    except (VerificationError, InvalidHashError):
        return False


def _checked(name: object, password: object) -> tuple[str, str]:
    name = str(name or "").strip() if isinstance(name, str | type(None)) else ""
    if not NAME.fullmatch(name):
        raise AccountError("a name of 1 to 32 letters, digits, spaces, '.', '_' or '-', please")
    if not isinstance(password, str) or not (
        PASSWORD_MIN_CHARS <= len(password) <= PASSWORD_MAX_CHARS
    ):
        raise AccountError(
            f"a password of {PASSWORD_MIN_CHARS} to {PASSWORD_MAX_CHARS} characters, please"
        )
    return name, password
