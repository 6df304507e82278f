#!/usr/bin/env bash
# Refresh requirements.lock, the exact version and hashes of every package setup.sh
# installs: pyproject.toml's dependencies with the dev and otel extras, plus pip, setuptools
# and wheel (scripts/lock-tools.in). Resolved by uv for every platform and for
# Python 3.11 and newer, from PyPI, whatever index this machine's pip is set to.
#   scripts/lock.sh                          # after editing pyproject.toml: keeps the other pins
#   scripts/lock.sh --upgrade                # newest versions pyproject.toml allows
#   scripts/lock.sh --upgrade-package ruff   # one package
# Then ./scripts/setup.sh installs the new lock; commit requirements.lock.
set -euo pipefail
cd "$(dirname "$0")/.."

uv_version=0.13.8  # the resolver itself, pinned so a refresh is repeatable
tool=.venv-lock
if [ "$("$tool/bin/uv" --version 2>/dev/null)" != "uv $uv_version" ]; then
    rm -rf "$tool"
    "${PYTHON:-python3}" -m venv "$tool"
    "$tool/bin/python" -m pip install -q "uv==$uv_version"
fi
"$tool/bin/uv" pip compile pyproject.toml scripts/lock-tools.in --extra dev --extra otel \
    --universal --python-version 3.11 --generate-hashes \
    --custom-compile-command scripts/lock.sh -o requirements.lock "$@"
