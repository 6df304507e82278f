#!/usr/bin/env bash
# Set everything up, then run the checks and the whole test suite against a
# real Redis and a real PostgreSQL (started here when they do not answer; see
# scripts/ensure-services.sh), with real Celery workers. Arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
./scripts/ensure-services.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy csgoflip_jobs workers celeryconfig.py beat_schedule.py tests benchmarks examples
.venv/bin/lint-imports --no-cache | tail -n 3
# Two test processes side by side (pytest-xdist; each file in one of them, each with
# a Redis and a PostgreSQL database of its own: tests/conftest.py). TEST_PROCESSES=0
# runs everything in this process.
REQUIRE_POSTGRES=1 exec .venv/bin/python -m pytest -n "${TEST_PROCESSES:-2}" --dist loadfile "$@"
