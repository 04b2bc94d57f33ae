#!/bin/sh
# A C compiler (and, for Debian's own python3, its headers) so make test builds and tests the
# mypyc-compiled modules (make compiled). Idempotent: does nothing when both are there. Without
# them the service still runs its pure-Python modules; nothing in tests/ installs anything.
set -eu
PYTHON="${1:-python3}"
HEADERS="$("$PYTHON" -c 'import sysconfig; print(sysconfig.get_paths()["include"])')/Python.h"
PACKAGES=""
command -v gcc >/dev/null 2>&1 || command -v cc >/dev/null 2>&1 || PACKAGES="gcc"
if [ ! -f "$HEADERS" ]; then
    case "$(command -v "$PYTHON")" in
        /usr/bin/*) PACKAGES="$PACKAGES python3-dev" ;;
        *) echo "no Python headers at $HEADERS (not Debian's python3): the pure-Python modules run" ;;
    esac
fi
[ -n "$PACKAGES" ] || exit 0
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
export DEBIAN_FRONTEND=noninteractive
# Other jobs on the machine may hold the dpkg lock: wait for it instead of failing.
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
# shellcheck disable=SC2086 # one word per package
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $PACKAGES
