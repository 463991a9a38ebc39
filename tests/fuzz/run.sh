#!/usr/bin/env bash
# Schema-driven fuzzing of the portal's REST API with schemathesis (PyPI):
# every request docs/openapi.json allows must be accepted or refused with
# a 404/409-style answer about the data (never "invalid" for a request the
# document allows), every request it does not allow must be refused, and
# nothing may answer 5xx. It runs against
# `freeport up` (with the AsyncAPI schema, so publishing is configured) as
# each of the hub's callers in turn: admin, owner and partner. One worker:
# with more, Python 3.11's ast module (which hypothesis uses) races itself.
#
#   tests/fuzz/run.sh [FREEPORT_BIN]       (default target/debug/freeport)
#
# FUZZ_SECONDS (per caller, default 60) bounds the time. Needs python3 with
# venv; installs schemathesis into target/test-deps/schemathesis once.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
BIN=${1:-target/debug/freeport}
SECONDS_EACH=${FUZZ_SECONDS:-60}
SCHEMATHESIS_VERSION=4.32.5
venv=target/test-deps/schemathesis
if ! "$venv/bin/schemathesis" --version 2>/dev/null | grep -q "$SCHEMATHESIS_VERSION"; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "schemathesis==$SCHEMATHESIS_VERSION"
fi
: "${FREEPORT_ASYNCAPI_SCHEMA:?set FREEPORT_ASYNCAPI_SCHEMA to the AsyncAPI 3.0 JSON Schema (tests/run.sh does)}"
work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
"$BIN" up --data-dir "$work/data" --portal-addr "127.0.0.1:$port" \
  --asyncapi-schema "$FREEPORT_ASYNCAPI_SCHEMA" >"$work/up.log" 2>&1 &
up=$!
trap 'kill $up 2>/dev/null || true; wait $up 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 300); do
  [ -f "$work/data/dev-credentials.json" ] && curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
  sleep 0.2
done
status=0
for who in admin owner partner; do
  key=$(python3 -c "import json,sys; print(json.load(open(sys.argv[1]))[sys.argv[2]])" "$work/data/dev-credentials.json" "$who")
  echo "==> schemathesis as $who, ${SECONDS_EACH}s"
  run() {
    local name=$1; shift
    # From the scratch folder: schemathesis keeps a cache where it runs.
    if (cd "$work" && "$root/$venv/bin/schemathesis" run "$root/docs/openapi.json" --url "http://127.0.0.1:$port" \
      -H "Authorization: Bearer $key" --workers 1 --suppress-health-check all \
      --seed 1 --warnings off "$@" >"$work/$who-$name.txt" 2>&1); then
      tail -2 "$work/$who-$name.txt"
    else
      cat "$work/$who-$name.txt"
      status=1
    fi
  }
  # Everything the document allows is accepted (or refused for the data:
  # 401/403/404/409), everything it does not allow is refused, and
  # nothing is a 5xx.
  run api --checks not_a_server_error,positive_data_acceptance,negative_data_rejection \
    --exclude-operation-id publish_publish --exclude-operation-id streams_register \
    --exclude-operation-id streams_register_schema --exclude-operation-id records_produce \
    --exclude-operation-id registry_register --exclude-operation-id registry_lookup \
    --exclude-operation-id registry_compatibility --exclude-operation-id registry_compatibility_all \
    --exclude-operation-id produce_produce --exclude-operation-id produce_produce_to_partition \
    --max-time "$SECONDS_EACH"
  # A stream's schema must be a valid JSON Schema or Avro schema, and a
  # produced record must fit its stream's schema, which the document cannot
  # say (the catalog checks schemas: 422 with every problem, 42201 through
  # the registry API; the portal checks records: 42203 naming the field);
  # the rest of the body is held to the document both ways.
  run schemas --checks not_a_server_error,negative_data_rejection \
    --include-operation-id streams_register --include-operation-id streams_register_schema \
    --include-operation-id registry_register --include-operation-id registry_lookup \
    --include-operation-id registry_compatibility --include-operation-id registry_compatibility_all \
    --include-operation-id produce_produce --include-operation-id produce_produce_to_partition \
    --max-time $((SECONDS_EACH / 4 + 1))
  # The v3 records stream answers 200 and reports each record on its own
  # line, so a record the document does not allow is refused in its
  # report, not by the status.
  run records --checks not_a_server_error,positive_data_acceptance \
    --include-operation-id records_produce --max-time $((SECONDS_EACH / 4 + 1))
  # An AsyncAPI document's validity is the AsyncAPI schema's, which the
  # catalog checks (422 with every problem; tests/tests/publish.rs): here
  # only that no document makes a 5xx.
  run publish --checks not_a_server_error --include-operation-id publish_publish \
    --max-time $((SECONDS_EACH / 4 + 1))
done
exit $status
