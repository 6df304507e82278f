#!/usr/bin/env bash
# Make sure what the tests use is on this machine, installing it from Debian's
# packages when missing (needs root or sudo):
#   Redis on 127.0.0.1:6379; PostgreSQL on 127.0.0.1:5432 with a `test`
#   database and trust authentication for 127.0.0.1 (a test machine only);
#   Chromium for the page tests; docker-compose to validate docker-compose.yml
#   (no Docker engine needed).
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

ensure_postgres() {
    if ! answers 5432; then
        local installed=""
        if ! command -v pg_ctlcluster >/dev/null 2>&1; then
            apt_install postgresql
            installed=1
        fi
        local version
        version=$(ls /etc/postgresql | sort -V | tail -n 1)
        if [ -n "$installed" ]; then
            # A machine we just set up for tests: trust local TCP connections.
            local hba="/etc/postgresql/$version/main/pg_hba.conf"
            $sudo sed -i '1i host all all 127.0.0.1/32 trust' "$hba"
        fi
        echo "ensure-services: starting PostgreSQL $version"
        $sudo pg_ctlcluster --skip-systemctl-redirect "$version" main start || true
        wait_for_port 5432
    fi
    if ! psql -h 127.0.0.1 -U postgres -d test -c 'SELECT 1' >/dev/null 2>&1; then
        psql -h 127.0.0.1 -U postgres -d postgres -c 'CREATE DATABASE test' >/dev/null
    fi
}

ensure_redis
ensure_postgres
command -v chromium >/dev/null 2>&1 || apt_install chromium
command -v docker-compose >/dev/null 2>&1 || apt_install docker-compose
