# Shared by the benchmark scripts under bench/ (sourced, never run): messages, the root and
# checkout checks, installing missing Debian packages, and the lock that keeps the timed parts
# of benchmarks sharing a machine apart.
#
# Set before sourcing: BENCH (the script's name, for messages). Read: LOCK (default
# /tmp/walvault-bench.lock, empty for none), QUIET_LOAD / QUIET_WAIT (wait, up to QUIET_WAIT
# seconds, default 300, for the 1-minute load average to fall below QUIET_LOAD before each timed
# part). Sets: ROOT (the walvault checkout). build_baseline builds BASELINE=REV's binaries.

log() { printf '== %s\n' "$*" >&2; }
die() { printf '%s: %s\n' "$BENCH" "$*" >&2; exit 1; }

[[ $(id -u) == 0 ]] || die "run as root (it installs packages and runs PostgreSQL as postgres)"
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
[[ -f $ROOT/Cargo.toml ]] || die "cannot find the walvault checkout above $ROOT/bench"

export DEBIAN_FRONTEND=noninteractive
apt_updated=0
need_apt() { # need_apt COMMAND-OR-PATH PACKAGE: installs PACKAGE unless COMMAND is there
    command -v "$1" >/dev/null && return
    if ((apt_updated == 0)); then
        apt-get update -q >&2
        apt_updated=1
    fi
    apt-get install -y -q "$2" >&2
}

# The peers and servers installed from crates.io, pinned to versions that build with the
# toolchain in rust-toolchain.toml (the newest s3s-fs needs a newer rustc; 0.14.1 builds), with
# dependencies resolved to versions whose rust-version this toolchain meets.
WAL_RUS_VERSION=0.4.1
S3S_FS_VERSION=0.14.1
need_crate() { # need_crate COMMAND CRATE VERSION [cargo install flags]: installs CRATE@VERSION unless COMMAND is there
    local cmd=$1 crate=$2 version=$3
    shift 3
    command -v "$cmd" >/dev/null && return
    log "installing $crate $version from crates.io"
    # not --locked: wal-rus's lock file names a dependency version the registry no longer has
    CARGO_RESOLVER_INCOMPATIBLE_RUST_VERSIONS=fallback cargo install "$crate@$version" "$@" >&2
}

quiet() { # waits for a quiet machine, if QUIET_LOAD asks for one
    [[ -n ${QUIET_LOAD:-} ]] || return 0
    log "waiting up to ${QUIET_WAIT:-300} s for the 1-minute load average to fall below $QUIET_LOAD"
    for ((w = 0; w < ${QUIET_WAIT:-300}; w += 10)); do
        awk -v q="$QUIET_LOAD" '{exit !($1 < q)}' /proc/loadavg && return 0
        sleep 10
    done
}

LOCK=${LOCK-/tmp/walvault-bench.lock}
[[ -z $LOCK ]] || exec {LOCKFD}>>"$LOCK"
bench_lock() { quiet; [[ -z $LOCK ]] || flock "$LOCKFD"; }   # before a timed part
bench_unlock() { [[ -z $LOCK ]] || flock -u "$LOCKFD"; }     # after it

# The checkout's commit, "-dirty" when it has uncommitted changes: call when building, since the
# checkout may move on while a long benchmark runs.
built_commit() {
    local c
    c=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null) || { echo "?"; return; }
    [[ -z $(git -C "$ROOT" status --porcelain --untracked-files=no 2>/dev/null) ]] || c+="-dirty"
    echo "$c"
}

# BASELINE=REV: builds the named binaries of that revision in a worktree beside the checkout
# (/tmp/walvault-baseline-REV, kept for the next run). Sets BASE_REV and BASE_TREE.
build_baseline() { # build_baseline BIN...
    [[ -n ${BASELINE:-} ]] || return 0
    BASE_REV=$(git -C "$ROOT" rev-parse --short "$BASELINE") || die "BASELINE=$BASELINE is not a revision"
    BASE_TREE=/tmp/walvault-baseline-$BASE_REV
    log "building the baseline $* at $BASE_REV in $BASE_TREE"
    [[ -d $BASE_TREE ]] || git -C "$ROOT" worktree add --detach "$BASE_TREE" "$BASE_REV" >&2
    local bins=() b
    for b in "$@"; do bins+=(--bin "$b"); done
    (cd "$BASE_TREE" && CARGO_TARGET_DIR=$BASE_TREE/target cargo build --release "${bins[@]}" >&2)
}
