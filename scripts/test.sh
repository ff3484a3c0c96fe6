#!/usr/bin/env bash
# Runs the whole test suite: formatting, lints, unit tests, and the integration tests against a
# real PostgreSQL 15 and a real S3-compatible server (moto, started here on loopback and stopped
# by pid). Installs missing dependencies first. Under CI=true nothing is skipped.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh

cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings

mkdir -p target
moto_pid=""
cleanup() {
  [ -n "$moto_pid" ] && kill "$moto_pid" 2>/dev/null || true
  # Clusters of tests killed mid-way (their own Drop stops them otherwise): stop by pid.
  for pidfile in /tmp/wv-*/*/postmaster.pid; do
    [ -f "$pidfile" ] && kill -9 "$(head -1 "$pidfile")" 2>/dev/null || true
  done
}
trap cleanup EXIT

# One moto server for the whole run; each test uses its own bucket.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
.tools/moto/bin/moto_server -H 127.0.0.1 -p "$port" >target/moto.log 2>&1 &
moto_pid=$!
for _ in $(seq 1 300); do
  curl -s -o /dev/null "http://127.0.0.1:$port/" && break
  sleep 0.2
done
curl -s -o /dev/null "http://127.0.0.1:$port/" || { echo "moto server did not start:"; cat target/moto.log; exit 1; }
export WALVAULT_TEST_S3_ENDPOINT="http://127.0.0.1:$port"

profile=default
[ "${CI:-}" = "true" ] && profile=ci
cargo nextest run --locked --workspace --profile "$profile" "$@"
