"""The job engine's Lua scripts (``csgoflip_jobs/engine/lua/``); each documents its
KEYS, ARGV and return value at its top. Run them as
:mod:`csgoflip_jobs.helpers.scripts` describes."""

from __future__ import annotations

from csgoflip_jobs.helpers.scripts import load_script

_PACKAGE = __package__ or "csgoflip_jobs.engine"

_EVENTS = ("events",)

ENQUEUE = load_script(_PACKAGE, "enqueue", _EVENTS)
PROMOTE = load_script(_PACKAGE, "promote", _EVENTS)
DELIVER = load_script(
    _PACKAGE, "deliver", ("dead_letter", "events", "jobs", "start_try", "unacked")
)
SET_ASIDE = load_script(_PACKAGE, "set_aside", ("dead_letter", "unacked"))
START = load_script(_PACKAGE, "start", ("events", "start_try"))
PROGRESS = load_script(_PACKAGE, "progress", _EVENTS)
FINISH = load_script(_PACKAGE, "finish", ("events", "jobs", "unacked"))
JOB_COUNTS = load_script(_PACKAGE, "job_counts", ("jobs", "held"))
LIST_WAITING = load_script(_PACKAGE, "list_waiting", ("jobs", "held", "messages"))
REMOVE = load_script(_PACKAGE, "remove", ("events", "jobs", "messages"))
PROMOTE_JOB = load_script(_PACKAGE, "promote_job", _EVENTS)
CHANGE_DELAY = load_script(_PACKAGE, "change_delay", _EVENTS)
CHANGE_PRIORITY = load_script(_PACKAGE, "change_priority")
PAUSE = load_script(_PACKAGE, "pause", _EVENTS)
DRAIN = load_script(_PACKAGE, "drain", ("events", "jobs", "held", "messages"))
CLEAN = load_script(_PACKAGE, "clean", ("events", "jobs"))
OBLITERATE = load_script(_PACKAGE, "obliterate", ("jobs", "messages"))
UPGRADE_KEYS = load_script(_PACKAGE, "upgrade_keys")
