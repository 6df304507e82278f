#!/usr/bin/env bash
# Install what the project needs on a fresh Debian machine with Python 3.11:
# Debian's redis-server and python3-venv when missing, then a .venv holding exactly
# requirements.lock (every package, dev tools and pip itself, at the version and
# hashes CI passed with) and the project. Safe to run again: the .venv is made anew
# only when the lock, pyproject.toml, this script or the Python changed, so it is
# always what a fresh machine gets. scripts/lock.sh refreshes the lock.
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

lock=requirements.lock
stamp=.venv/.csgoflip-installed
wanted=$(cat "$lock" pyproject.toml scripts/setup.sh <("$python" -VV) | sha256sum | cut -d' ' -f1)
[ -f "$stamp" ] && [ "$(cat "$stamp")" = "$wanted" ] && exit 0

echo "setup: installing $lock into a new .venv"
rm -rf .venv
"$python" -m venv .venv
pip=(.venv/bin/python -m pip install -q --require-hashes)
# pip first, at its locked version, so the locked pip installs the rest.
"${pip[@]}" --no-deps -r <(awk '/^pip==/ { p = 1 } p { print } p && !/\\$/ { exit }' "$lock")
"${pip[@]}" -r "$lock"
# The project itself: its dependencies are the lock's; built by the locked setuptools.
# Its "Editable installation" notice (a general caution about flat layouts: the
# finder it installs maps only the packages pyproject.toml lists) is not shown.
PYTHONWARNINGS="ignore:Editable installation:UserWarning" \
    .venv/bin/python -m pip install -q --no-deps --no-build-isolation -e .
if ! .venv/bin/python -m pip check >/dev/null; then
    .venv/bin/python -m pip check >&2 || true
    echo "setup: $lock does not satisfy pyproject.toml; run scripts/lock.sh" >&2
    exit 1
fi
echo "$wanted" >"$stamp"
