#!/usr/bin/env bash
# Installs the two local FHIR R4 servers used by the integration tests and the demo, each in its
# own environment (never the service's .venv). Idempotent: skips what is already installed for
# the current lock/requirements file, so reruns cost nothing and CI caches can keep the folders.
#   servers/medplum/node_modules  <- npm ci (package-lock.json; brings Node 22 as the npm package "node")
#   servers/sekmet/.venv          <- pip install -r servers/sekmet/requirements.txt
# `install-fhir-servers.sh medplum` installs only Medplum (the demo server of `make run`).
set -euo pipefail
cd "$(dirname "$0")/../servers"

# A folder that is a symlink is managed elsewhere (e.g. a git worktree sharing the main checkout's
# servers): never reinstall through it (npm ci would empty the shared folder).
medplum_stamp=medplum/node_modules/.installed
if [ ! -L medplum/node_modules ] && { [ ! -f "$medplum_stamp" ] || [ medplum/package-lock.json -nt "$medplum_stamp" ] \
    || [ medplum/package.json -nt "$medplum_stamp" ]; }; then
    command -v npm >/dev/null || { apt-get update -qq && apt-get install -y -qq nodejs npm; }
    (cd medplum && npm ci --no-audit --no-fund --loglevel=error)
    medplum/node_modules/.bin/node --version >/dev/null  # the node@22 binary really arrived
    touch "$medplum_stamp"
fi

[ "${1:-all}" = medplum ] && exit 0

sekmet_stamp=sekmet/.venv/.installed
if [ ! -L sekmet/.venv ] && { [ ! -f "$sekmet_stamp" ] || [ sekmet/requirements.txt -nt "$sekmet_stamp" ]; }; then
    "${PYTHON:-python3}" -m venv sekmet/.venv
    sekmet/.venv/bin/pip install --quiet --disable-pip-version-check -r sekmet/requirements.txt
    touch "$sekmet_stamp"
fi
