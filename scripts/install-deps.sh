#!/usr/bin/env bash
# Installs what building and testing walvault need on Debian 12, skipping what is already there:
# PostgreSQL 15 (server and client tools), python3-venv and moto's S3 server (into .tools/moto),
# curl, and cargo-nextest. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
[ -x /usr/lib/postgresql/15/bin/psql ] || need+=(postgresql-client-15)
command -v curl >/dev/null || need+=(curl)
command -v cc >/dev/null || need+=(build-essential)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest"
  cargo install --locked cargo-nextest
fi

if ! .tools/moto/bin/moto_server --help >/dev/null 2>&1; then
  echo "installing moto's S3 server into .tools/moto"
  mkdir -p .tools
  python3 -m venv .tools/moto
  .tools/moto/bin/pip install --quiet 'moto[server]'
fi
