#!/usr/bin/env bash
# Install what the project needs on a fresh Debian machine with Python 3.11:
# Debian's redis-server and python3-venv when missing, then a .venv with the
# project and its dev tools. Safe to run again; it only redoes what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

python=${PYTHON:-python3}
"$python" - <<'PY' || { echo "setup: Python 3.11 or newer is required" >&2; exit 1; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

packages=()
command -v redis-server >/dev/null 2>&1 || packages+=(redis-server)
"$python" -c 'import ensurepip, venv' >/dev/null 2>&1 || packages+=(python3-venv)
if ((${#packages[@]})); then
    sudo=""
    [ "$(id -u)" -eq 0 ] || sudo="sudo"
    echo "setup: installing ${packages[*]} with apt-get"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "${packages[@]}" >/dev/null
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
stamp=.venv/.csgoflip-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
    echo "setup: installing the project into .venv"
    .venv/bin/python -m pip install -q --upgrade pip
    .venv/bin/python -m pip install -q -e '.[dev]'
    touch "$stamp"
fi
