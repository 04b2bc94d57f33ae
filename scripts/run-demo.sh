#!/usr/bin/env bash
# `make run`: the service on http://127.0.0.1:$PORT (default 8080, CDS_AUTH=off unless set) and a
# local FHIR R4 server (Medplum, in memory) on http://127.0.0.1:$FHIR_PORT/fhir (default 8090)
# loaded with the demo patients of fixtures/fhir/. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."
PORT=${PORT:-8080}
FHIR_PORT=${FHIR_PORT:-8090}
FHIR_TOKEN=${FHIR_TOKEN:-demo-token}
FHIR_URL="http://127.0.0.1:${FHIR_PORT}/fhir"
SERVICE="http://127.0.0.1:${PORT}"
PORT=$PORT FHIR_PORT=$FHIR_PORT scripts/check-ports.sh

HOST=127.0.0.1 PORT=$FHIR_PORT FHIR_TOKEN=$FHIR_TOKEN \
    servers/medplum/node_modules/.bin/node servers/medplum/server.cjs &
fhir_pid=$!
trap 'kill "$fhir_pid" 2>/dev/null || true' EXIT

.venv/bin/python - "$FHIR_URL" <<'PY'
import sys, time, urllib.request
deadline = time.monotonic() + 60
while True:
    try:
        urllib.request.urlopen(sys.argv[1] + "/metadata", timeout=2)
        break
    except OSError:
        if time.monotonic() > deadline:
            sys.exit("the demo FHIR server did not start")
        time.sleep(0.3)
PY
.venv/bin/aih-cds fixtures load --fhir-server "$FHIR_URL" --bearer "$FHIR_TOKEN" | tail -1

example=fixtures/fhir/mmf-pregnant-status/request.json
cat <<TXT

Demo EHR page: $SERVICE/ (development mode opens /demo)
Demo FHIR server: $FHIR_URL (bearer token: $FHIR_TOKEN), demo patients = fixtures/fhir/* ids.
Ready-to-paste requests once the service below is up:

  curl -s $SERVICE/cds-services | python3 -m json.tool

  # with prefetch (everything in the request)
  curl -s -H 'Content-Type: application/json' --data @$example \\
       $SERVICE/cds-services/aih-order-sign | python3 -m json.tool

  # without prefetch: the service reads the chart from the demo FHIR server
  .venv/bin/python -c 'import json,sys; from cds_service.cli.demo_run import without_prefetch as w; print(json.dumps(w(json.load(open(sys.argv[1])), sys.argv[2], sys.argv[3])))' \\
       $example $FHIR_URL $FHIR_TOKEN \\
    | curl -s -H 'Content-Type: application/json' --data @- $SERVICE/cds-services/aih-order-sign | python3 -m json.tool

  # every demo patient, with and without prefetch, cards printed readably
  .venv/bin/aih-cds demo --fhir-server $FHIR_URL --bearer $FHIR_TOKEN                          # clock pinned per scenario
  .venv/bin/aih-cds demo --fhir-server $FHIR_URL --bearer $FHIR_TOKEN --service-url $SERVICE   # this running service, real clock

Other ports: make run PORT=<service port> FHIR_PORT=<FHIR server port>. Ctrl-C stops both.
TXT
CDS_AUTH=${CDS_AUTH:-off} .venv/bin/aih-cds serve --host 127.0.0.1 --port "$PORT"
