#!/usr/bin/env bash
# Set everything up, then run the checks and the whole test suite against a
# real Redis (REDIS_URL, else localhost:6379 db 9, else a private redis-server)
# with real Celery workers.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/mypy csgoflip_jobs workers celeryconfig.py beat_schedule.py tests benchmarks
exec .venv/bin/python -m pytest "$@"
