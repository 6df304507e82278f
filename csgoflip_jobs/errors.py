"""The root of the package's exceptions.

Every error the platform raises on purpose derives from :class:`CsgoflipJobsError`;
each package adds its own next to its code (``csgoflip_jobs.engine.errors``,
``csgoflip_jobs.helpers.errors``, ``csgoflip_jobs.payments.errors``,
``csgoflip_jobs.emails.errors``), all importable from ``csgoflip_jobs``.
"""

from __future__ import annotations


class CsgoflipJobsError(Exception):
    """Base of every error this package raises on purpose."""


class ConfigError(CsgoflipJobsError, ValueError):
    """An environment variable holds a value the platform cannot use."""
