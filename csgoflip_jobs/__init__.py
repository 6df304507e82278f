"""csgoflip-jobs: the CSGOFlip web app's background jobs on Celery and Redis.

The public contract (see DESIGN.md): ``app``, ``JobQueue``, ``UnrecoverableError``
and the helper services.
"""

from csgoflip_jobs.celery_app import app
from csgoflip_jobs.engine.errors import JobOptionsError, UnrecoverableError
from csgoflip_jobs.engine.job_queue import Job, JobQueue
from csgoflip_jobs.errors import ConfigError, CsgoflipJobsError
from csgoflip_jobs.helpers.cache import CacheService
from csgoflip_jobs.helpers.errors import LockError, LockLostError
from csgoflip_jobs.helpers.monitoring import RedisMonitor
from csgoflip_jobs.helpers.rate_limit import RateLimitService
from csgoflip_jobs.helpers.redis_service import RedisService
from csgoflip_jobs.helpers.redlock import Lock, LockSignal, RedlockService
from csgoflip_jobs.helpers.sessions import Session, SessionService
from csgoflip_jobs.notifications.service import NotificationService

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
