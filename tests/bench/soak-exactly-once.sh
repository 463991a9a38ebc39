#!/usr/bin/env bash
# Soak the exactly-once guarantee: the crash test with many more SIGKILLs of
# the link (default 100) while records are produced continuously, on two
# tansu brokers. Prints the seed; FREEPORT_SEED=<seed> replays a run.
#
#   tests/bench/soak-exactly-once.sh [KILLS]
set -euo pipefail
cd "$(dirname "$0")/../.."
export FREEPORT_KILLS=${1:-100}
cargo build -p freeport --bins
cargo test -p freeport-tests --test exactly_once -- --nocapture
