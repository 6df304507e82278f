"""The job engine's Lua scripts (``csgoflip_jobs/engine/lua/``); each documents its
KEYS, ARGV and return value at its top. Run them as
:mod:`csgoflip_jobs.helpers.scripts` describes."""

from __future__ import annotations

from csgoflip_jobs.helpers.scripts import load_script

_PACKAGE = __package__ or "csgoflip_jobs.engine"

ENQUEUE = load_script(_PACKAGE, "enqueue")
PROMOTE = load_script(_PACKAGE, "promote")
DELIVER = load_script(_PACKAGE, "deliver", libraries=("dead_letter",))
SET_ASIDE = load_script(_PACKAGE, "set_aside", libraries=("dead_letter",))
START = load_script(_PACKAGE, "start")
FINISH = load_script(_PACKAGE, "finish")
REMOVE_FINISHED = load_script(_PACKAGE, "remove_finished")
JOB_COUNTS = load_script(_PACKAGE, "job_counts")
