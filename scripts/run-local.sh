#!/usr/bin/env bash
# Set everything up, then run the platform locally: Redis (REDIS_URL, or a
# redis-server started here) and a worker for each queue. Ctrl-C stops it all.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
exec .venv/bin/csgoflip-jobs run-local "$@"
