#!/usr/bin/env bash
# What one HTTP produce costs as the catalog grows, for one or more builds
# of freeport, on the same machine in one run: for each BIN, `freeport up`
# on its embedded mock clusters, one stream `orders`, then 1-record
# produce requests from 32 connections (the portal bench's --against mode);
# then STREAMS more streams registered over REST, and the same again.
#
#   cargo build --release -p freeport
#   tests/bench/produce-rate.sh target/release/freeport [OTHER_BIN ...]
#
# Needs curl, jq, python3 and the portal bench (cargo builds it). STREAMS
# (default 2000) and REQUESTS (per connection, default 500) come from the
# environment.
set -euo pipefail
cd "$(dirname "$0")/../.."
STREAMS=${STREAMS:-2000}
REQUESTS=${REQUESTS:-500}
[ $# -ge 1 ] || { echo "usage: $0 FREEPORT_BIN [FREEPORT_BIN ...]" >&2; exit 2; }
cargo bench -p freeport-tests --bench portal --no-run >/dev/null 2>&1
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
echo "command: STREAMS=$STREAMS REQUESTS=$REQUESTS $0 $*"

for bin in "$@"; do
  work=$(mktemp -d)
  port=$(free_port)
  "$bin" up --data-dir "$work/data" --portal-addr "127.0.0.1:$port" >"$work/up.log" 2>&1 &
  up=$!
  P="http://127.0.0.1:$port"
  for _ in $(seq 200); do [ -f "$work/data/dev-credentials.json" ] && curl -sf "$P/healthz" >/dev/null && break; sleep 0.1; done
  OWNER=$(jq -r .owner "$work/data/dev-credentials.json")
  register() {
    curl -sf -o /dev/null -X POST "$P/v1/streams" -H "Authorization: Bearer $OWNER" \
      -H 'Content-Type: application/json' \
      -d "{\"name\": \"$1\", \"cluster\": \"local-a\", \"topic\": \"$1\", \"classification\": \"partner\"}"
  }
  register orders
  measure() {
    cargo bench -q -p freeport-tests --bench portal -- --against "$P" --key "$OWNER" --topic orders \
      --requests "$REQUESTS" 2>/dev/null | sed "s|^|$(basename "$(dirname "$bin")")/$(basename "$bin"), $1: |"
  }
  measure "1 stream"
  export -f register; export P OWNER
  seq 1 "$STREAMS" | xargs -P 8 -I{} bash -c 'register grown-{}'
  measure "$((STREAMS + 1)) streams"
  kill "$up"; wait "$up" 2>/dev/null || true
  rm -rf "$work"
done
