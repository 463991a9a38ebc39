#!/usr/bin/env bash
# Installs what the tests need on a fresh machine, then runs every check and
# every test: formatting, clippy, unit tests and the end-to-end tests against
# real tansu brokers. CI runs exactly this (.ci/run). Installs are cached:
# tansu in ~/.cargo/bin; the AsyncAPI schema, confluent-kafka (PyPI) and
# Confluent's Node.js REST Proxy client (npm) under target/test-deps.
set -euo pipefail
cd "$(dirname "$0")/.."

TANSU_VERSION=0.6.0
ASYNCAPI_SPECS_VERSION=6.11.1
# The ecosystem's own clients the compatibility tests drive (PyPI).
CONFLUENT_KAFKA_VERSION=2.16.1
# Confluent's REST Proxy client for Node.js (npm), which speaks v1.
KAFKA_REST_NODE_VERSION=0.0.5

step() { printf '\n==> %s\n' "$*"; }

step "system tools"
missing=()
for tool in curl jq bash python3; do
  command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
done
# The schema-driven fuzzing installs schemathesis into a virtualenv.
python3 -c 'import ensurepip, venv' 2>/dev/null || missing+=(python3-venv)
if ((${#missing[@]})); then
  if ! command -v apt-get >/dev/null 2>&1; then
    echo "missing ${missing[*]} and no apt-get to install them" >&2
    exit 1
  fi
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq "${missing[@]}"
fi
command -v npm >/dev/null 2>&1 || { echo "npm is needed to fetch the AsyncAPI JSON Schema" >&2; exit 1; }

step "chromium (the web UI's test drives it headless)"
if [ -z "${CHROMIUM_BIN:-}" ]; then
  for name in chromium chromium-browser google-chrome; do
    if command -v "$name" >/dev/null 2>&1; then CHROMIUM_BIN="$(command -v "$name")"; break; fi
  done
fi
if [ -z "${CHROMIUM_BIN:-}" ]; then
  command -v apt-get >/dev/null 2>&1 || { echo "chromium is needed for the web UI test and there is no apt-get" >&2; exit 1; }
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq chromium
  CHROMIUM_BIN="$(command -v chromium)"
fi
export CHROMIUM_BIN
"$CHROMIUM_BIN" --version

step "tansu ${TANSU_VERSION} (the Kafka-compatible broker the tests run against)"
export PATH="$HOME/.cargo/bin:$PATH"
if ! tansu --version 2>/dev/null | grep -qx "tansu ${TANSU_VERSION}"; then
  echo "installing tansu ${TANSU_VERSION}; this takes several minutes once"
  cargo install tansu --locked --version "${TANSU_VERSION}" --features dynostore
fi
export TANSU_BIN="$(command -v tansu)"
tansu --version

step "AsyncAPI 3.0 JSON Schema (@asyncapi/specs ${ASYNCAPI_SPECS_VERSION})"
specs_dir="target/test-deps/asyncapi-specs"
schema="$specs_dir/package/schemas/3.0.0-without-\$id.json"
if [ "$(cat "$specs_dir/VERSION" 2>/dev/null)" != "${ASYNCAPI_SPECS_VERSION}" ] || [ ! -f "$schema" ]; then
  rm -rf "$specs_dir" && mkdir -p "$specs_dir"
  (cd "$specs_dir" && npm pack --silent "@asyncapi/specs@${ASYNCAPI_SPECS_VERSION}" >/dev/null \
    && tar xzf "asyncapi-specs-${ASYNCAPI_SPECS_VERSION}.tgz")
  echo "${ASYNCAPI_SPECS_VERSION}" > "$specs_dir/VERSION"
fi
export FREEPORT_ASYNCAPI_SCHEMA="$PWD/$schema"

step "confluent-kafka ${CONFLUENT_KAFKA_VERSION} (Python: Schema Registry serializers, REST Proxy clients' counterpart)"
clients="target/test-deps/clients"
# The serializers' extras: each brings its format's own library (fastavro,
# jsonschema, protobuf); the marker names them, so adding one reinstalls.
clients_wanted="${CONFLUENT_KAFKA_VERSION}[avro,json,protobuf]"
if [ "$(cat "$clients/VERSION" 2>/dev/null)" != "$clients_wanted" ] || [ ! -x "$clients/bin/python" ]; then
  rm -rf "$clients"
  python3 -m venv "$clients"
  "$clients/bin/pip" install -q "confluent-kafka[avro,json,protobuf]==${CONFLUENT_KAFKA_VERSION}"
  echo "$clients_wanted" > "$clients/VERSION"
fi
export FREEPORT_CLIENTS_PYTHON="$PWD/$clients/bin/python"
"$FREEPORT_CLIENTS_PYTHON" -c 'import confluent_kafka; print("confluent-kafka", confluent_kafka.__version__)'

step "kafka-rest ${KAFKA_REST_NODE_VERSION} (Node.js: Confluent's REST Proxy client)"
command -v node >/dev/null 2>&1 || { echo "node is needed for the REST Proxy client test" >&2; exit 1; }
rest_client="target/test-deps/rest-client"
if [ "$(cat "$rest_client/VERSION" 2>/dev/null)" != "${KAFKA_REST_NODE_VERSION}" ] || [ ! -d "$rest_client/node_modules/kafka-rest" ]; then
  rm -rf "$rest_client"
  mkdir -p "$rest_client"
  (cd "$rest_client" && npm install --silent --no-audit --no-fund "kafka-rest@${KAFKA_REST_NODE_VERSION}" >/dev/null)
  echo "${KAFKA_REST_NODE_VERSION}" > "$rest_client/VERSION"
fi
export FREEPORT_REST_CLIENT_MODULES="$PWD/$rest_client/node_modules"

step "cargo fmt --check"
cargo fmt --all -- --check

step "cargo clippy"
cargo clippy --workspace --all-targets -- -D warnings

step "build the freeport binary for the end-to-end tests"
cargo build --workspace --bins
export FREEPORT_BIN="$PWD/target/debug/freeport"

step "tests"
cargo test --workspace

step "schema-driven fuzzing of the REST API (schemathesis, bounded in time)"
FUZZ_SECONDS="${FUZZ_SECONDS:-30}" tests/fuzz/run.sh "$FREEPORT_BIN"
