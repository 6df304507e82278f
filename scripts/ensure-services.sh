#!/usr/bin/env bash
# Make sure what the tests use is on this machine, installing it from Debian's
# packages when missing (needs root or sudo):
#   Redis on 127.0.0.1:6379; PostgreSQL on 127.0.0.1:5432 with a `test`
#   database, reachable as `postgres` without a password; Chromium for the page
#   tests. The Compose file is validated by a test with its JSON schema, so no
#   docker-compose (nor the Docker engine it pulls in) is installed.
#
# Usage: ensure-services.sh [redis] [postgres] [chromium]   (no argument: all three)
#
# PostgreSQL: when `psql -w` cannot connect, the first TCP rule of pg_hba.conf is made
# `host all all 127.0.0.1/32 trust` (this script is for test machines only: it is
# run by scripts/test.sh), PostgreSQL is reloaded, or started when it is not
# running, and the script waits for it. It never prompts for a password; when it
# still cannot connect it says so in one line, with the port the cluster has.
# Debian's newest cluster by default; these point the step at another one:
#   CSGOFLIP_PG_PORT    port on 127.0.0.1 (5432)
#   CSGOFLIP_PG_DATA    data directory of a cluster run with pg_ctl, not pg_ctlcluster
#   CSGOFLIP_PG_CTL     its pg_ctl (required with CSGOFLIP_PG_DATA); run as the owner
#                       of the data directory
#   CSGOFLIP_PG_HBA     pg_hba.conf (default: the cluster's own)
#   CSGOFLIP_PG_WAIT_S  how long to wait for a connection after a start or reload (30)
set -euo pipefail

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
apt_updated=""

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

apt_install() {
    if [ -z "$apt_updated" ]; then $sudo apt-get update -qq; apt_updated=1; fi
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq "$@" >/dev/null
}

wait_for_port() {
    for _ in $(seq 100); do answers "$1" && return 0; sleep 0.1; done
    echo "ensure-services: nothing answers on port $1" >&2
    return 1
}

ensure_redis() {
    answers 6379 && return 0
    command -v redis-server >/dev/null 2>&1 || apt_install redis-server
    echo "ensure-services: starting redis-server on 127.0.0.1:6379"
    mkdir -p /tmp/csgoflip-redis
    redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no \
        --dir /tmp/csgoflip-redis --logfile /tmp/csgoflip-redis/redis.log
    wait_for_port 6379
}

# --- PostgreSQL --------------------------------------------------------------

pg_port=${CSGOFLIP_PG_PORT:-5432}
pg_data=${CSGOFLIP_PG_DATA:-}
[ -z "$pg_data" ] || pg_data=$(cd "$pg_data" && pwd)  # absolute: pg_ctl runs from /
pg_ctl=${CSGOFLIP_PG_CTL:-}
pg_hba=${CSGOFLIP_PG_HBA:-}
pg_wait_s=${CSGOFLIP_PG_WAIT_S:-30}
pg_cluster=""   # Debian's "version cluster" (e.g. "15 main") when pg_data is unset
pg_error=""     # psql's last complaint
TRUST_LINE="host all all 127.0.0.1/32 trust"

# psql that never prompts (-w) and gives up on a silent server (PGCONNECT_TIMEOUT).
pg_psql() {
    PGCONNECT_TIMEOUT=5 psql -w -X -q -h 127.0.0.1 -p "$pg_port" -U postgres "$@" </dev/null
}

pg_connects() {
    local out
    if out=$(pg_psql -d postgres -tAc 'SELECT 1' 2>&1); then return 0; fi
    # Its first line, without the address we print anyway: "fe_sendauth: no password
    # supplied", "Connection refused", "timeout expired"...
    pg_error=$(printf '%s\n' "$out" | head -n 1 |
        sed -E 's/^psql: (error: )?//; s/^connection to server .* failed: //')
    return 1
}

# pg_ctl runs as the owner of the data directory (it refuses root, as initdb does),
# from / : that user may not be allowed into the directory we were started in.
pg_ctl_as_owner() {
    local owner
    owner=$(stat -c %U "$pg_data")
    if [ "$(id -un)" = "$owner" ]; then
        (cd / && "$pg_ctl" -D "$pg_data" "$@")
    elif [ "$(id -u)" -eq 0 ]; then
        (cd / && runuser -u "$owner" -- "$pg_ctl" -D "$pg_data" "$@")
    else
        (cd / && sudo -u "$owner" "$pg_ctl" -D "$pg_data" "$@")
    fi
}

# Debian: the cluster on pg_port, else the newest one (installing PostgreSQL when
# there is none); its pg_hba.conf unless CSGOFLIP_PG_HBA says otherwise.
pg_locate() {
    if [ -n "$pg_data" ]; then
        [ -n "$pg_ctl" ] || { echo "ensure-services: CSGOFLIP_PG_DATA needs CSGOFLIP_PG_CTL" >&2; exit 1; }
        pg_hba=${pg_hba:-$pg_data/pg_hba.conf}
        return 0
    fi
    command -v pg_lsclusters >/dev/null 2>&1 || apt_install postgresql
    pg_cluster=$(pg_lsclusters -h | awk -v port="$pg_port" '$3 == port { print $1, $2; exit }')
    [ -n "$pg_cluster" ] || pg_cluster=$(pg_lsclusters -h | sort -V | awk 'END { print $1, $2 }')
    if [ -z "$pg_cluster" ]; then
        echo "ensure-services: PostgreSQL is installed but has no cluster (pg_createcluster 15 main)" >&2
        exit 1
    fi
    pg_hba=${pg_hba:-/etc/postgresql/${pg_cluster% *}/${pg_cluster#* }/pg_hba.conf}
}

# What was found, for the error line: e.g. "cluster 15/main: port 5433, online".
pg_found() {
    if [ -n "$pg_data" ]; then
        local port status="down"
        pg_ctl_as_owner status >/dev/null 2>&1 && status="online"
        if [ "$status" = online ] && [ -f "$pg_data/postmaster.pid" ]; then
            port=$(sed -n 4p "$pg_data/postmaster.pid")
        else
            port=$(sed -nE 's/^[[:space:]]*port[[:space:]]*=[[:space:]]*([0-9]+).*/\1/p' \
                "$pg_data/postgresql.conf" | tail -n 1)
        fi
        echo "cluster in $pg_data: port ${port:-5432}, $status"
    else
        pg_lsclusters -h | awk '{ printf "%scluster %s/%s: port %s, %s", sep, $1, $2, $3, $4; sep = "; " }'
    fi
}

pg_running() {
    if [ -n "$pg_data" ]; then
        pg_ctl_as_owner status >/dev/null 2>&1
    else
        # shellcheck disable=SC2086 # "version cluster" is two arguments
        $sudo pg_ctlcluster $pg_cluster status >/dev/null 2>&1
    fi
}

pg_control() {  # start | reload
    if [ -n "$pg_data" ]; then
        pg_ctl_as_owner -l "$pg_data/csgoflip-ensure-services.log" -w -t "$pg_wait_s" "$1" \
            >/dev/null || true
    else
        # shellcheck disable=SC2086
        $sudo pg_ctlcluster --skip-systemctl-redirect $pg_cluster "$1" || true
    fi
}

# Make the trust line the first TCP rule (rules match first to last). Returns 0 when
# the file changed.
pg_trust() {
    local first content
    if ! $sudo test -f "$pg_hba"; then
        echo "ensure-services: no pg_hba.conf at $pg_hba (CSGOFLIP_PG_HBA)" >&2
        exit 1
    fi
    # `local` rules (Unix sockets) never match a TCP connection: skipped.
    first=$($sudo grep -vE '^[[:space:]]*(#|$|local[[:space:]])' "$pg_hba" | head -n 1 |
        tr -s '[:blank:]' ' ' || true)
    first=${first# }; first=${first% }
    [ "$first" = "$TRUST_LINE" ] && return 1
    echo "ensure-services: PostgreSQL: adding '$TRUST_LINE' to $pg_hba (a test machine)"
    content=$($sudo cat "$pg_hba")
    # Written into the same file (tee), so its owner and mode stay.
    printf '# added by scripts/ensure-services.sh (csgoflip-jobs, a test machine)\n%s\n%s\n' \
        "$TRUST_LINE" "$content" | $sudo tee "$pg_hba" >/dev/null
}

pg_wait_connect() {
    local deadline=$((SECONDS + pg_wait_s))
    until pg_connects; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

ensure_postgres() {
    if ! pg_connects; then
        pg_locate
        local changed=""
        pg_trust && changed=1
        if ! pg_running; then
            echo "ensure-services: starting PostgreSQL (${pg_cluster:-$pg_data})"
            pg_control start
        elif [ -n "$changed" ]; then
            echo "ensure-services: reloading PostgreSQL (${pg_cluster:-$pg_data})"
            pg_control reload
        fi
        if ! pg_wait_connect; then
            echo "ensure-services: cannot connect to PostgreSQL on 127.0.0.1:$pg_port as postgres" \
                "without a password (${pg_error:-no answer}); found $(pg_found)" >&2
            exit 1
        fi
    fi
    if [ -z "$(pg_psql -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'test'")" ]; then
        pg_psql -d postgres -c 'CREATE DATABASE test' >/dev/null
    fi
}

ensure_chromium() {
    command -v chromium >/dev/null 2>&1 || apt_install chromium
}

steps=("$@")
[ ${#steps[@]} -gt 0 ] || steps=(redis postgres chromium)
for step in "${steps[@]}"; do
    case "$step" in
        redis) ensure_redis ;;
        postgres) ensure_postgres ;;
        chromium) ensure_chromium ;;
        *) echo "ensure-services: unknown step '$step' (redis postgres chromium)" >&2; exit 2 ;;
    esac
done
