# Shortcuts; the scripts do the work and also run without make.
.PHONY: setup run test lint

setup:
	./scripts/setup.sh

run:
	./scripts/run-local.sh

test:
	./scripts/test.sh

lint: setup
	.venv/bin/ruff check .
	.venv/bin/ruff format --check .
	.venv/bin/mypy csgoflip_jobs workers celeryconfig.py beat_schedule.py tests benchmarks examples
	.venv/bin/lint-imports --no-cache
