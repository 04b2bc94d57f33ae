#!/bin/sh
# wrk and valgrind (Debian) for the load benchmark (make bench), its quick run in the test suite,
# and the instruction counts of one call (python -m bench.instructions).
# Idempotent: does nothing when both are already on PATH. Nothing in bench/ or tests/ installs them.
set -eu
if command -v wrk >/dev/null 2>&1 && command -v valgrind >/dev/null 2>&1; then
    exit 0
fi
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Other jobs on the machine may hold the dpkg lock: wait for it instead of failing.
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends wrk valgrind
