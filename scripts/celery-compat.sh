#!/usr/bin/env bash
# Celery compatibility job (issue 33): run Celery's own integration suite
# (t/integration/test_tasks.py and test_canvas.py of the Celery release the lock pins)
# once on stock Celery and once on the platform, then compare the two against
# scripts/celery_compat/expected-failures.txt. Everything it makes is in var/celery-compat/.
#
#   scripts/celery-compat.sh                              # both modules, both modes
#   scripts/celery-compat.sh --modules tasks              # test_tasks.py only
#   scripts/celery-compat.sh --modes platform --modules canvas -k "test_chain and not stamp"
#   scripts/celery-compat.sh --timeout 120                # per-test timeout (s), default 60
#   scripts/celery-compat.sh --report-only                # re-print the last comparison
#
# Why a venv of its own (var/celery-compat/venv): the suite needs a test plugin the
# project does not (pytest-rerunfailures, for its `flaky` marker), and the project's
# .venv must stay exactly requirements.lock. It is built the way scripts/setup.sh builds
# .venv (the lock with its hashes, then the project editable), plus
# scripts/celery_compat/requirements.txt (hash-pinned), and made anew only when one of
# those or this script changes.
#
# Why the sdist: PyPI's Celery wheel has no tests; the sdist has t/integration. Its
# sha256 is pinned below (it is also in requirements.lock's celery entry), so the suite
# run is the one of exactly that release. Only t/ and the pytest settings
# (pyproject.toml) are extracted: the sdist's own celery/ package would otherwise shadow
# the installed one on sys.path.
set -euo pipefail
cd "$(dirname "$0")/.."

celery_version=5.7.0
celery_sdist_sha256=6a5dfcf6662287204f009a02002b9e66c83d4105e47ebabdc7079108772fc6f0

top=var/celery-compat
venv=$top/venv
python=${PYTHON:-python3}
lock=requirements.lock
extra=scripts/celery_compat/requirements.txt

command -v redis-server >/dev/null 2>&1 || {
    echo "celery-compat: redis-server is not installed (scripts/setup.sh installs it)" >&2
    exit 1
}

# The compatibility venv: the project's locked install plus the suite's extra test plugin.
stamp=$venv/.csgoflip-compat-installed
wanted=$(cat "$lock" pyproject.toml "$extra" scripts/celery-compat.sh <("$python" -VV) |
    sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$wanted" ]; then
    echo "celery-compat: installing $lock + $extra into a new $venv"
    rm -rf "$venv"
    mkdir -p "$top"
    "$python" -m venv "$venv"
    pip=("$venv/bin/python" -m pip install -q --require-hashes)
    "${pip[@]}" --no-deps -r <(awk '/^pip==/ { p = 1 } p { print } p && !/\\$/ { exit }' "$lock")
    "${pip[@]}" -r "$lock"
    "${pip[@]}" --no-deps -r "$extra"
    PYTHONWARNINGS="ignore:Editable installation:UserWarning" \
        "$venv/bin/python" -m pip install -q --no-deps --no-build-isolation -e .
    if ! "$venv/bin/python" -m pip check >/dev/null; then
        "$venv/bin/python" -m pip check >&2 || true
        echo "celery-compat: $extra does not fit $lock" >&2
        exit 1
    fi
    echo "$wanted" >"$stamp"
fi
installed=$("$venv/bin/python" -c 'import celery; print(celery.__version__)')
if [ "$installed" != "$celery_version" ]; then
    echo "celery-compat: the lock installs Celery $installed, this job pins $celery_version;" \
        "update celery_version and celery_sdist_sha256 in $0" >&2
    exit 1
fi

# Celery's sdist, checked against the pinned hash, its suite extracted once.
suite=$top/celery-$celery_version
if [ ! -f "$suite/.extracted" ]; then
    dist=$top/dist
    sdist=$dist/celery-$celery_version.tar.gz
    mkdir -p "$dist"
    [ -f "$sdist" ] || "$venv/bin/python" -m pip download -q --no-deps --no-binary :all: \
        "celery==$celery_version" -d "$dist"
    if ! echo "$celery_sdist_sha256  $sdist" | sha256sum -c --quiet -; then
        echo "celery-compat: $sdist does not have the pinned sha256; removed it" >&2
        rm -f "$sdist"
        exit 1
    fi
    rm -rf "$suite"
    tar -xzf "$sdist" -C "$top" "celery-$celery_version/t" "celery-$celery_version/pyproject.toml"
    touch "$suite/.extracted"
fi

exec "$venv/bin/python" scripts/celery_compat/run.py --suite "$suite" --out "$top" "$@"
