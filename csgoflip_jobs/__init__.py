"""csgoflip-jobs: the CSGOFlip web app's background jobs on Celery and Redis.

The public contract (see DESIGN.md): ``app``, ``JobQueue``, ``UnrecoverableError``.
"""

from .celery_app import app
from .errors import ConfigError, CsgoflipJobsError, JobOptionsError, UnrecoverableError
from .job_queue import Job, JobQueue

__all__ = [
    "ConfigError",
    "CsgoflipJobsError",
    "Job",
    "JobOptionsError",
    "JobQueue",
    "UnrecoverableError",
    "app",
]
