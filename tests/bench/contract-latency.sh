#!/usr/bin/env bash
# How fast contract changes take effect, end to end, on real brokers:
# approve -> the link reports the mirror running (contract "active"),
# approve -> the first record is readable at the partner's broker,
# revoke  -> the link reports the mirror stopped.
#
# Starts two tansu brokers and `freeport up` against them on free ports,
# runs RUNS contracts (default 5), prints the figures, and cleans up.
# Needs: tansu (tests/run.sh installs it), curl, jq, python3.
#
#   cargo build -p freeport && tests/bench/contract-latency.sh [RUNS]
set -euo pipefail
cd "$(dirname "$0")/../.."
RUNS=${1:-5}
FREEPORT=${FREEPORT_BIN:-$PWD/target/debug/freeport}
TANSU=${TANSU_BIN:-$(command -v tansu || echo "$HOME/.cargo/bin/tansu")}
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }

a=$(free_port); b=$(free_port); portal=$(free_port)
for p in "$a" "$b"; do
  "$TANSU" broker --listener-url "tcp://127.0.0.1:$p" --advertised-listener-url "tcp://127.0.0.1:$p" \
    --storage-engine memory://tansu/ >"$work/tansu-$p.log" 2>&1 &
  pids+=($!)
done
"$FREEPORT" up --data-dir "$work/data" --portal-addr "127.0.0.1:$portal" \
  --cluster "local-a=127.0.0.1:$a" --cluster "local-b=127.0.0.1:$b" >"$work/up.log" 2>&1 &
pids+=($!)
P="http://127.0.0.1:$portal"
for _ in $(seq 100); do [ -f "$work/data/dev-credentials.json" ] && curl -sf "$P/healthz" >/dev/null && break; sleep 0.1; done
OWNER=$(jq -r .owner "$work/data/dev-credentials.json")
PARTNER=$(jq -r .partner "$work/data/dev-credentials.json")
ADMIN=$(jq -r .admin "$work/data/dev-credentials.json")
state() { curl -sf "$P/v1/contracts/$1" -H "Authorization: Bearer $ADMIN" | jq -r ".$2"; }

curl -sf -X POST "$P/v1/streams" -H "Authorization: Bearer $OWNER" -H 'Content-Type: application/json' \
  -d '{"name":"bench","cluster":"local-a","topic":"bench","partitions":1,"classification":"partner"}' >/dev/null
curl -sf -X POST "$P/topics/bench" -H "Authorization: Bearer $OWNER" -H 'Content-Type: application/json' \
  -d '{"records":[{"value":1}]}' >/dev/null

echo "command: tests/bench/contract-latency.sh $RUNS"
for run in $(seq "$RUNS"); do
  id=$(curl -sf -X POST "$P/v1/contracts" -H "Authorization: Bearer $PARTNER" -H 'Content-Type: application/json' \
    -d "{\"stream\":\"bench\",\"purpose\":\"bench\",\"destination\":{\"cluster\":\"local-b\",\"topic\":\"copy$run\"}}" | jq -r .id)
  t0=$(ms)
  curl -sf -X POST "$P/v1/contracts/$id/approve" -H "Authorization: Bearer $ADMIN" >/dev/null
  until [ "$(state "$id" state)" = active ]; do sleep 0.01; done
  t1=$(ms)
  until "$FREEPORT" topic read --bootstrap "127.0.0.1:$b" --topic "copy$run" --max 1 --idle-secs 1 2>/dev/null | grep -q value; do :; done
  t2=$(ms)
  t3=$(ms)
  curl -sf -X POST "$P/v1/contracts/$id/revoke" -H "Authorization: Bearer $ADMIN" >/dev/null
  until [ "$(state "$id" link_status)" = stopped ]; do sleep 0.01; done
  t4=$(ms)
  echo "run $run: approve->active $((t1 - t0)) ms; approve->first record read at the partner $((t2 - t0)) ms (includes starting a reader); revoke->stopped $((t4 - t3)) ms"
done
# Baseline, same run: a fresh reader fetching a record that is already there.
for i in 1 2 3; do
  t0=$(ms)
  "$FREEPORT" topic read --bootstrap "127.0.0.1:$b" --topic copy1 --max 1 --idle-secs 1 >/dev/null 2>&1
  echo "baseline $i: a fresh reader fetching an existing record takes $(($(ms) - t0)) ms (part of the figure above)"
done
