#!/usr/bin/env bash
# Installs what walvault needs on a fresh Debian 12 machine and builds the release binaries
# target/release/{wal-push,wal-fetch,walvault}.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install-deps.sh
cargo build --release --locked
echo "built: $(pwd)/target/release/wal-push, wal-fetch, walvault"
