"""csgoflip-jobs: the CSGOFlip web app's background jobs on Celery and Redis.

Importing the package does nothing: no I/O, no settings read, no patching. Each
public name below is imported on first use, so ``from csgoflip_jobs import
CacheService`` loads the cache helper alone and a bad setting surfaces as a
:class:`ConfigError` when the setting is first needed.

Where each name lives: the job engine (``csgoflip_jobs.engine``), the Redis
helpers (``csgoflip_jobs.helpers``), the CSGOFlip domain (``payments``,
``notifications``, ``emails``), the Celery app wiring (``csgoflip_jobs.celery_app``)
and the operators' tools (``csgoflip_jobs.ops``).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

_EXPORTS: dict[str, str] = {
    # the Celery app: celery -A csgoflip_jobs worker -Q payment
    "app": "csgoflip_jobs.celery_app",
    # the job engine
    "Job": "csgoflip_jobs.engine.job",
    "JobQueue": "csgoflip_jobs.engine.job_queue",
    "JobOptionsError": "csgoflip_jobs.engine.errors",
    "JobFailedError": "csgoflip_jobs.engine.errors",
    "JobNotFoundError": "csgoflip_jobs.engine.errors",
    "JobStateError": "csgoflip_jobs.engine.errors",
    "JobStalledError": "csgoflip_jobs.engine.errors",
    "QueueEvents": "csgoflip_jobs.engine.events",
    "UnrecoverableError": "csgoflip_jobs.engine.errors",
    # the Redis helpers
    "CacheService": "csgoflip_jobs.helpers.cache",
    "Lock": "csgoflip_jobs.helpers.redlock",
    "LockSignal": "csgoflip_jobs.helpers.redlock",
    "RedlockService": "csgoflip_jobs.helpers.redlock",
    "RateLimitService": "csgoflip_jobs.helpers.rate_limit",
    "RedisMonitor": "csgoflip_jobs.helpers.monitoring",
    "RedisService": "csgoflip_jobs.helpers.redis_service",
    "Session": "csgoflip_jobs.helpers.sessions",
    "SessionService": "csgoflip_jobs.helpers.sessions",
    "BrokerError": "csgoflip_jobs.helpers.errors",
    "BrokerUnavailableError": "csgoflip_jobs.helpers.errors",
    "BrokerTimeoutError": "csgoflip_jobs.helpers.errors",
    "BrokerAuthenticationError": "csgoflip_jobs.helpers.errors",
    "BrokerOutOfMemoryError": "csgoflip_jobs.helpers.errors",
    "BrokerNotReplicatedError": "csgoflip_jobs.helpers.errors",
    "WrongKeyTypeError": "csgoflip_jobs.helpers.errors",
    "LockError": "csgoflip_jobs.helpers.errors",
    "LockLostError": "csgoflip_jobs.helpers.errors",
    # the domain
    "PaymentService": "csgoflip_jobs.payments.service",
    "PaymentError": "csgoflip_jobs.payments.errors",
    "InsufficientFundsError": "csgoflip_jobs.payments.errors",
    "NotificationService": "csgoflip_jobs.notifications.service",
    "EmailService": "csgoflip_jobs.emails.sender",
    # the base errors
    "CsgoflipJobsError": "csgoflip_jobs.errors",
    "ConfigError": "csgoflip_jobs.errors",
}

__all__ = [
    "BrokerAuthenticationError",
    "BrokerError",
    "BrokerNotReplicatedError",
    "BrokerOutOfMemoryError",
    "BrokerTimeoutError",
    "BrokerUnavailableError",
    "CacheService",
    "ConfigError",
    "CsgoflipJobsError",
    "EmailService",
    "InsufficientFundsError",
    "Job",
    "JobFailedError",
    "JobNotFoundError",
    "JobOptionsError",
    "JobQueue",
    "JobStalledError",
    "JobStateError",
    "Lock",
    "LockError",
    "LockLostError",
    "LockSignal",
    "NotificationService",
    "PaymentError",
    "PaymentService",
    "QueueEvents",
    "RateLimitService",
    "RedisMonitor",
    "RedisService",
    "RedlockService",
    "Session",
    "SessionService",
    "UnrecoverableError",
    "WrongKeyTypeError",
    "app",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:  # what type checkers and IDEs see; nothing of it runs
    from csgoflip_jobs.celery_app import app
    from csgoflip_jobs.emails.sender import EmailService
    from csgoflip_jobs.engine.errors import (
        JobFailedError,
        JobNotFoundError,
        JobOptionsError,
        JobStalledError,
        JobStateError,
        UnrecoverableError,
    )
    from csgoflip_jobs.engine.events import QueueEvents
    from csgoflip_jobs.engine.job import Job
    from csgoflip_jobs.engine.job_queue import JobQueue
    from csgoflip_jobs.errors import ConfigError, CsgoflipJobsError
    from csgoflip_jobs.helpers.cache import CacheService
    from csgoflip_jobs.helpers.errors import (
        BrokerAuthenticationError,
        BrokerError,
        BrokerNotReplicatedError,
        BrokerOutOfMemoryError,
        BrokerTimeoutError,
        BrokerUnavailableError,
        LockError,
        LockLostError,
        WrongKeyTypeError,
    )
    from csgoflip_jobs.helpers.monitoring import RedisMonitor
    from csgoflip_jobs.helpers.rate_limit import RateLimitService
    from csgoflip_jobs.helpers.redis_service import RedisService
    from csgoflip_jobs.helpers.redlock import Lock, LockSignal, RedlockService
    from csgoflip_jobs.helpers.sessions import Session, SessionService
    from csgoflip_jobs.notifications.service import NotificationService
    from csgoflip_jobs.payments.errors import InsufficientFundsError, PaymentError
    from csgoflip_jobs.payments.service import PaymentService
