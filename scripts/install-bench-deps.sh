#!/bin/sh
# wrk (Debian) for the load benchmark (make bench) and its quick run in the test suite.
# Idempotent: does nothing when wrk is already on PATH. Nothing in bench/ or tests/ installs it.
set -eu
if command -v wrk >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Other jobs on the machine may hold the dpkg lock: wait for it instead of failing.
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends wrk
