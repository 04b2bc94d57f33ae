#!/usr/bin/env bash
# `make run` step 1: stop before installing or starting anything when a port it needs is taken.
#   PORT       the CDS service (default 8080)
#   FHIR_PORT  the demo FHIR server (default 8090)
set -uo pipefail
PORT=${PORT:-8080}
FHIR_PORT=${FHIR_PORT:-8090}

in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

status=0
for entry in "PORT:$PORT:the CDS service" "FHIR_PORT:$FHIR_PORT:the demo FHIR server"; do
    IFS=: read -r name port what <<<"$entry"
    if in_use "$port"; then
        echo "Port $port ($name, $what) is already in use on 127.0.0.1." >&2
        status=1
    fi
done
if [ "$status" -ne 0 ]; then
    echo "Choose free ports, for example: make run PORT=$((PORT + 1000)) FHIR_PORT=$((FHIR_PORT + 1000))" >&2
fi
exit "$status"
