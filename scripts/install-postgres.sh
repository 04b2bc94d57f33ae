#!/bin/sh
# PostgreSQL server binaries for the integration tests, from Debian's packages.
# Idempotent: does nothing when initdb is already there. The tests start and stop their own
# throw-away server (tests/integration/database/postgres.py); nothing here starts one.
set -eu
if ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    exit 0
fi
if [ "$(id -u)" -ne 0 ]; then
    echo "PostgreSQL is not installed; as root run: apt-get install -y postgresql" >&2
    exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends postgresql
