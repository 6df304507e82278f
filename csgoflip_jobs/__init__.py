"""csgoflip-jobs: the CSGOFlip web app's background jobs on Celery and Redis.

The public contract (see DESIGN.md): ``app``, ``JobQueue``, ``UnrecoverableError``
and the helper services.
"""

from .cache import CacheService
from .celery_app import app
from .errors import (
    ConfigError,
    CsgoflipJobsError,
    JobOptionsError,
    LockError,
    LockLostError,
    UnrecoverableError,
)
from .job_queue import Job, JobQueue
from .monitoring import RedisMonitor
from .notifications import NotificationService
from .rate_limit import RateLimitService
from .redis_service import RedisService
from .redlock import Lock, LockSignal, RedlockService
from .sessions import Session, SessionService

__all__ = [
    "CacheService",
    "ConfigError",
    "CsgoflipJobsError",
    "Job",
    "JobOptionsError",
    "JobQueue",
    "Lock",
    "LockError",
    "LockLostError",
    "LockSignal",
    "NotificationService",
    "RateLimitService",
    "RedisMonitor",
    "RedisService",
    "RedlockService",
    "Session",
    "SessionService",
    "UnrecoverableError",
    "app",
]
