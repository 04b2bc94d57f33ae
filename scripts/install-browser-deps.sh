#!/usr/bin/env bash
# Installs what the browser tests need, skipping whatever is already there:
# Debian's chromium + chromium-driver, and playwright-core (npm) in tests/browser/node_modules.
# Playwright never downloads a browser here: the tests launch /usr/bin/chromium.
set -euo pipefail
cd "$(dirname "$0")/.."

if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ] || ! command -v npm >/dev/null; then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    export DEBIAN_FRONTEND=noninteractive
    # Other jobs on the machine may hold the dpkg lock: wait for it instead of failing.
    $SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
    packages="chromium chromium-driver"
    command -v npm >/dev/null || packages="$packages nodejs npm"
    # shellcheck disable=SC2086
    $SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $packages
fi

if [ ! -f tests/browser/node_modules/playwright-core/package.json ]; then
    (cd tests/browser && PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 npm ci --no-audit --no-fund --loglevel=error)
fi
