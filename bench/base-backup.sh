#!/usr/bin/env bash
# Base-backup and restore benchmark: walvault base-backup / restore against pg_basebackup
# (-Ft -X none, plain and --compress=client-zstd, extracted with tar -x) and pgBackRest
# (backup --type=full with zst, restore), on the same pgbench database, in one run.
#
# Run as root on Debian 12 from anywhere inside the walvault checkout:
#
#     bash bench/base-backup.sh
#
# It installs what it is missing (postgresql-15, pgbackrest, jq, time, zstd; linux-perf when
# PROFILE=1), builds walvault's release binaries, makes a throw-away PostgreSQL 15 cluster run
# as `postgres` on a unix socket only, fills it with `pgbench -i -s SCALE` for each scale in
# SCALES, and for each size times every backup tool, then every restore, and prints markdown
# tables. Everything it starts is stopped by pid on exit.
#
# Settings (environment):
#   SCALES="50 200"  pgbench scales, in this order (50 is about 0.75 GB, 200 about 3 GB)
#   RUNS=5           timed runs per tool and size (at least 3), after one untimed run
#   PGBIN=/usr/lib/postgresql/15/bin
#   LOCK=/tmp/walvault-bench.lock   every timed round holds this lock (flock), nothing else does
#   QUIET_LOAD=N     before each round, wait (up to QUIET_WAIT=300 s) for the load average < N
#   PROFILE=1        after the largest size, a system-wide perf profile of one walvault backup
#                    (zstd + key) and one pg_basebackup --compress=client-zstd (under the lock)
#   RESULTS=FILE     also write the markdown results there
#   KEEP=1           keep the temporary directory (raw results, logs, repositories)
#   CARGO_TARGET_DIR is honoured for the build.
set -euo pipefail

SCALES=${SCALES:-50 200}
RUNS=${RUNS:-5}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
KEEP=${KEEP:-0}
PROFILE=${PROFILE:-0}

BENCH=base-backup.sh
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
((RUNS >= 3)) || die "RUNS must be at least 3"

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
[[ -x $PGBIN/initdb ]] || need_apt /nonexistent postgresql-15
need_apt pgbackrest pgbackrest
need_apt jq jq
need_apt /usr/bin/time time
need_apt zstd zstd
need_apt flock util-linux
((PROFILE == 1)) && need_apt perf linux-perf
export PATH=$HOME/.cargo/bin:$PATH
command -v cargo >/dev/null || die "cargo is not installed"

log "building walvault (release)"
(cd "$ROOT" && cargo build --release --bin walvault --bin wal-push --bin wal-fetch >&2)
COMMIT=$(built_commit)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

# ---------------------------------------------------------------------------------------------
# Work directory, owned by postgres: every tool runs as postgres. All repositories and outputs
# are on the same filesystem (the one holding /tmp).
# ---------------------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/walvault-bbench.XXXXXX)
PGDATA=$WORK/pgdata
SOCK=$WORK/sock
VSOCK=$WORK/vsock # for starting restored copies (port 5433)
BIN=$WORK/bin
mkdir -p "$WORK"/{bin,sock,vsock,home,wv-repo,pgbb,pgbr-repo,pgbr-lock,pgbr-log,restore,runs,verify}
cp "$TARGET/release/walvault" "$TARGET/release/wal-push" "$TARGET/release/wal-fetch" "$BIN/"
chmod 0755 "$BIN"/*
chown -R postgres:postgres "$WORK"
chmod 0755 "$WORK"

as_pg() { runuser -u postgres -- env HOME="$WORK/home" PATH="$BIN:$PGBIN:/usr/bin:/bin" "$@"; }
psql_pg() { as_pg psql -h "$SOCK" -p 5432 -d postgres -X -q -t -A -v ON_ERROR_STOP=1 "$@"; }

VERIFY_PID=""
cleanup() {
    local pid
    for f in "$PGDATA/postmaster.pid" $VERIFY_PID; do
        [[ -f $f ]] || continue
        pid=$(head -1 "$f")
        if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
            kill -INT "$pid" 2>/dev/null || true # fast shutdown of that postmaster
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
    done
    if [[ $KEEP == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# Configurations
# ---------------------------------------------------------------------------------------------
as_pg walvault keygen "$WORK/key" >/dev/null
for v in zstd-key zstd lz4 none; do
    {
        echo "repo = \"file://$WORK/wv-repo\""
        echo "compression = \"${v%-key}\""
        # The archived WAL (pushed with the zstd + key settings) needs the key to be read back.
        if [[ $v == *-key ]]; then
            echo "encryption_key_file = \"$WORK/key\""
        else
            echo "decryption_key_files = [\"$WORK/key\"]"
        fi
    } >"$WORK/wv-$v.toml"
done
cat >"$WORK/pgbackrest.conf" <<EOF
[global]
repo1-path=$WORK/pgbr-repo
lock-path=$WORK/pgbr-lock
log-path=$WORK/pgbr-log
spool-path=$WORK/pgbr-lock
log-level-console=warn
log-level-stderr=warn
log-level-file=off
compress-type=zst
repo1-retention-full=9999999

[bench]
pg1-path=$PGDATA
pg1-socket-path=$SOCK
pg1-port=5432
pg1-user=postgres
EOF
chown postgres:postgres "$WORK"/*.toml "$WORK/pgbackrest.conf"
PGBR="pgbackrest --config=$WORK/pgbackrest.conf --stanza=bench"

# ---------------------------------------------------------------------------------------------
# The cluster. Loading runs with wal_level=minimal and no archiving (pgbench -i writes no WAL for
# its tables then); backups run with wal_level=replica and every segment archived by both
# walvault (zstd + key) and pgBackRest, so every tool's backup waits for the same archiving.
# ---------------------------------------------------------------------------------------------
log "initdb $PGDATA (socket $SOCK only)"
as_pg initdb -D "$PGDATA" -U postgres -A trust --no-sync >/dev/null
cat >>"$PGDATA/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$SOCK'
port = 5432
max_wal_size = 4GB
checkpoint_timeout = 1h
autovacuum = off
include = 'bench_mode.conf'
EOF
MODE_LOAD="wal_level = minimal
max_wal_senders = 0
archive_mode = off"
MODE_BACKUP="wal_level = replica
max_wal_senders = 10
archive_mode = on
archive_command = '$BIN/wal-push --config $WORK/wv-zstd-key.toml %p && $PGBR archive-push %p'"
pg_mode() { # pg_mode TEXT: restart with these settings
    if [[ -f $PGDATA/postmaster.pid ]]; then
        as_pg pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
    fi
    printf '%s\n' "$1" >"$PGDATA/bench_mode.conf"
    chown postgres:postgres "$PGDATA/bench_mode.conf"
    as_pg pg_ctl -D "$PGDATA" -w -t 300 -l "$WORK/postgres.log" start >/dev/null
}
pg_mode "$MODE_BACKUP"
as_pg $PGBR stanza-create >&2
psql_pg -c "select pg_switch_wal()" >/dev/null

# ---------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------
BACKUPS=(wv-zstd-key wv-zstd wv-lz4 wv-none pgbb-plain pgbb-zstd pgbr-zst pgbr-zst-p2)
RESTORES=(wv-zstd-key wv-zstd-key-nosync wv-lz4 wv-lz4-nosync wv-none wv-none-nosync
    tar-plain tar-zstd pgbr-zst)
PGBR_VERSION=$(pgbackrest version | awk '{print $2}')
PG_VERSION=$("$PGBIN/postgres" --version | awk '{print $3}')
declare -A LABEL=(
    [wv-zstd-key]="walvault, zstd:3 + key" [wv-zstd]="walvault, zstd:3 (context: no key)"
    [wv-lz4]="walvault, lz4" [wv-none]="walvault, none"
    [pgbb-plain]="pg_basebackup $PG_VERSION -Ft, no compression"
    [pgbb-zstd]="pg_basebackup -Ft --compress=client-zstd"
    [pgbr-zst]="pgBackRest $PGBR_VERSION, zst (process-max=1, its default)"
    [pgbr-zst-p2]="pgBackRest, zst, process-max=2 (context)"
    [wv-zstd-key-nosync]="walvault, zstd:3 + key, --no-sync" [wv-lz4-nosync]="walvault, lz4, --no-sync"
    [wv-none-nosync]="walvault, none, --no-sync"
    [tar-plain]="tar -x of pg_basebackup's base.tar (no fsync)"
    [tar-zstd]="tar --zstd -x of base.tar.zst (no fsync)"
    [pgbr-rs]="pgBackRest restore"
)
R_LABEL() { # restore labels differ a little from backup labels
    case $1 in
    wv-zstd-key) echo "walvault restore, zstd:3 + key (fsync)" ;;
    wv-lz4) echo "walvault restore, lz4 (fsync)" ;;
    wv-none) echo "walvault restore, none (fsync)" ;;
    pgbr-zst) echo "pgBackRest $PGBR_VERSION restore, zst (informative)" ;;
    *) echo "${LABEL[$1]}" ;;
    esac
}

# backup_cmd VARIANT OUTDIR: the exact command timed (words, run as postgres without a shell).
backup_cmd() {
    local v=$1 out=$2
    case $v in
    wv-*) echo "walvault base-backup --config $WORK/$v.toml -d host=$SOCK --fast-checkpoint --json" ;;
    pgbb-plain) echo "pg_basebackup -h $SOCK -p 5432 -U postgres -D $out -Ft -X none -c fast" ;;
    pgbb-zstd) echo "pg_basebackup -h $SOCK -p 5432 -U postgres -D $out -Ft -X none -c fast --compress=client-zstd" ;;
    pgbr-zst) echo "$PGBR --type=full --start-fast backup" ;;
    pgbr-zst-p2) echo "$PGBR --type=full --start-fast --process-max=2 backup" ;;
    esac
}

# restore_cmd VARIANT DEST: the command timed (words; tar's through sh -c for -C).
restore_cmd() {
    local v=$1 dest=$2 base=${1%-nosync} flags=""
    [[ $1 == *-nosync ]] && flags=" --no-sync"
    case $v in
    wv-*) echo "walvault restore --config $WORK/$base.toml --target-dir $dest --backup ${KEPT[$base]} --target-immediate$flags" ;;
    tar-plain) echo "tar -xf ${KEPT[pgbb-plain]}/base.tar -C $dest" ;;
    tar-zstd) echo "tar --zstd -xf ${KEPT[pgbb-zstd]}/base.tar.zst -C $dest" ;;
    pgbr-zst) echo "$PGBR --pg1-path=$dest --set=${KEPT[pgbr-zst]} --type=immediate restore" ;;
    esac
}

# The peak of the summed RSS of a process tree (every process below ROOT but the runuser, time
# and bash wrappers),
# sampled every 0.1 s; only used in the untimed first run of each variant.
tree_rss() { # tree_rss ROOT_PID OUT_FILE
    local root=$1 out=$2 peak=0 s
    while kill -0 "$root" 2>/dev/null; do
        s=$(ps -e -o pid=,ppid=,rss=,comm= | awk -v r="$root" '
            {p[$1] = $2; m[$1] = $3; c[$1] = $4}
            END {for (i in p) {j = i; while (j > 1 && j != r) j = p[j];
                 if (j == r && c[i] != "runuser" && c[i] != "time" && c[i] != "bash") s += m[i]}; print s + 0}')
        ((s > peak)) && peak=$s
        sleep 0.1
    done
    echo "$peak" >"$out"
}

# timed OUT_PREFIX SAMPLE CMD...: runs CMD as postgres under /usr/bin/time; leaves
# OUT_PREFIX.time ("elapsed maxrss_kb user sys"), .out, .err; dies on failure.
timed() {
    local pfx=$1 sample=$2 pid
    shift 2
    sync # the previous run's dirty pages are not this run's
    as_pg /usr/bin/time -o "$pfx.time" -f '%e %M %U %S' "$@" >"$pfx.out" 2>"$pfx.err" &
    pid=$!
    ((sample == 1)) && tree_rss "$pid" "$pfx.tree" &
    wait "$pid" || die "failed: $* ($(tail -5 "$pfx.err"))"
    wait
}

warm_data() { # reads the data directory into the page cache (not timed)
    find "$PGDATA" -type f -print0 | xargs -0 cat >/dev/null
}

lock() { bench_lock; LOADS+=("$(cut -d' ' -f1 /proc/loadavg)"); }
unlock() { LOADS+=("$(cut -d' ' -f1 /proc/loadavg)"); bench_unlock; }

declare -A KEPT     # variant -> what the last backup of it is (walvault id, directory, pgBackRest label)
RAW=$WORK/runs.tsv # size-scale kind variant run seconds maxrss_kb user sys stored_bytes
: >"$RAW"

stored_of() { # stored_of VARIANT PREFIX: STORED = bytes stored by that run; records KEPT
    local v=$1 pfx=$2 id label
    case $v in
    wv-*)
        id=$(jq -r .id "$pfx.out")
        [[ -n ${KEPT[$v]:-} ]] && rm -rf "$WORK/wv-repo/backups/${KEPT[$v]}" "$WORK/wv-repo/backups/${KEPT[$v]}.json"
        KEPT[$v]=$id
        STORED=$(du -sb "$WORK/wv-repo/backups/$id" "$WORK/wv-repo/backups/$id.json" | awk '{s += $1} END {print s}')
        ;;
    pgbb-*)
        [[ -n ${KEPT[$v]:-} ]] && rm -rf "${KEPT[$v]}"
        KEPT[$v]=$pfx.dir
        STORED=$(du -sb "$pfx.dir" | awk '{print $1}')
        ;;
    pgbr-*)
        label=$(find "$WORK/pgbr-repo/backup/bench" -maxdepth 1 -type d -regextype posix-extended \
            -regex '.*/[0-9]{8}-[0-9]{6}F' -printf '%f\n' | sort | tail -1)
        [[ $label != "${KEPT[pgbr-zst]:-}" ]] || die "pgBackRest made no new backup"
        KEPT[pgbr-zst]=$label # both pgBackRest variants make the same kind of backup
        STORED=$(du -sb "$WORK/pgbr-repo/backup/bench/$label" | awk '{print $1}')
        ;;
    esac
}

run_backup() { # run_backup SCALE VARIANT RUN (RUN 0 = untimed first run)
    local scale=$1 v=$2 r=$3 pfx
    pfx=$WORK/runs/b.$scale.$v.$r
    # shellcheck disable=SC2046 # a list of words by design
    timed "$pfx" $((r == 0)) $(backup_cmd "$v" "$pfx.dir")
    stored_of "$v" "$pfx"
    if ((r > 0)); then
        printf '%s\tbackup\t%s\t%s\t%s\t%s\n' "$scale" "$v" "$r" "$(cat "$pfx.time")" "$STORED" |
            tr ' ' '\t' >>"$RAW"
    fi
}

run_restore() { # run_restore SCALE VARIANT RUN
    local scale=$1 v=$2 r=$3 pfx dest
    pfx=$WORK/runs/r.$scale.$v.$r
    dest=$WORK/restore/$v
    rm -rf "$dest"
    as_pg mkdir -m 0700 "$dest"
    # shellcheck disable=SC2046
    timed "$pfx" $((r == 0)) $(restore_cmd "$v" "$dest")
    if ((r > 0)); then
        printf '%s\trestore\t%s\t%s\t%s\t%s\n' "$scale" "$v" "$r" "$(cat "$pfx.time")" \
            "$(du -sb "$dest" | awk '{print $1}')" | tr ' ' '\t' >>"$RAW"
        rm -rf "$dest"
    fi
}

# verify_restored VARIANT SCALE: checks the untimed first restore of VARIANT (outside timing).
verify_restored() {
    local v=$1 scale=$2 dest=$WORK/restore/$1 f=$WORK/verify/$2.$1
    case $v in
    tar-plain | tar-zstd)
        local src=${KEPT[pgbb-plain]}
        [[ $v == tar-zstd ]] && src=${KEPT[pgbb-zstd]}
        cp "$src/backup_manifest" "$dest/" && chown postgres:postgres "$dest/backup_manifest"
        ;;
    esac
    case $v in
    pgbr-*) echo "(pgBackRest keeps no PostgreSQL backup_manifest: checked by starting it)" >"$f" ;;
    *) as_pg pg_verifybackup -n "$dest" >"$f" 2>&1 || die "pg_verifybackup failed on $v: $(cat "$f")" ;;
    esac
    # Start the restored copies that bring their own restore_command: recovery to the end of the
    # backup, read-only queries, row count.
    if [[ $v == wv-zstd-key || $v == wv-none-nosync || $v == pgbr-zst ]]; then
        # WALVAULT_PREFETCH=0: no prefetcher lingers after the check (wal-fetch inherits it).
        as_pg env WALVAULT_PREFETCH=0 pg_ctl -D "$dest" -w -t 600 -l "$WORK/verify/$scale.$v.log" start -o \
            "-c listen_addresses='' -c unix_socket_directories='$VSOCK' -c port=5433 -c archive_mode=off" \
            >/dev/null || die "restored $v did not start: $(tail -20 "$WORK/verify/$scale.$v.log")"
        VERIFY_PID=$dest/postmaster.pid
        local rows
        rows=$(as_pg psql -h "$VSOCK" -p 5433 -d postgres -X -t -A -c "select count(*) from pgbench_accounts")
        echo "started; pgbench_accounts has $rows rows (expected $((scale * 100000)))" >>"$f"
        ((rows == scale * 100000)) || die "restored $v has $rows rows"
        as_pg pg_ctl -D "$dest" -m fast -w stop >/dev/null
        VERIFY_PID=""
    fi
    rm -rf "$dest"
}

LOADS=()
declare -A SIZE_DB SIZE_TAR LOADS_OF
for scale in $SCALES; do
    log "scale $scale: pgbench -i (wal_level=minimal, no archiving)"
    pg_mode "$MODE_LOAD"
    as_pg pgbench -h "$SOCK" -p 5432 -i -s "$scale" -q postgres >/dev/null 2>&1
    psql_pg -c "vacuum analyze" -c "checkpoint" >/dev/null
    pg_mode "$MODE_BACKUP"
    psql_pg -c "select pg_switch_wal()" >/dev/null
    SIZE_DB[$scale]=$(psql_pg -c "select pg_database_size('postgres')")
    log "scale $scale: pg_database_size = ${SIZE_DB[$scale]} bytes; data directory $(du -sh "$PGDATA" | cut -f1)"
    warm_data

    log "scale $scale: one untimed backup per tool (warms caches, proves the command, samples tree RSS)"
    for v in "${BACKUPS[@]}"; do
        run_backup "$scale" "$v" 0
    done
    # The tar data all tools read: walvault's raw bytes (tar archives + manifest).
    SIZE_TAR[$scale]=$(jq -r .raw_bytes "$WORK/runs/b.$scale.wv-zstd-key.0.out")

    LOADS=()
    for r in $(seq "$RUNS"); do
        warm_data
        lock
        # The order rotates each round, so no tool always follows the same one.
        n=${#BACKUPS[@]}
        for ((i = 0; i < n; i++)); do
            run_backup "$scale" "${BACKUPS[((i + r) % n)]}" "$r"
        done
        unlock
        log "scale $scale: backup round $r of $RUNS done (load ${LOADS[-2]} -> ${LOADS[-1]})"
    done
    LOADS_OF[$scale.backup]="${LOADS[*]}"

    log "scale $scale: one untimed restore per tool, each verified"
    for v in "${RESTORES[@]}"; do
        run_restore "$scale" "$v" 0
        verify_restored "$v" "$scale"
    done
    LOADS=()
    for r in $(seq "$RUNS"); do
        lock
        n=${#RESTORES[@]}
        for ((i = 0; i < n; i++)); do
            run_restore "$scale" "${RESTORES[((i + r) % n)]}" "$r"
        done
        unlock
        log "scale $scale: restore round $r of $RUNS done (load ${LOADS[-2]} -> ${LOADS[-1]})"
    done
    LOADS_OF[$scale.restore]="${LOADS[*]}"
done

if ((PROFILE == 1)); then
    log "profiling one walvault backup (zstd + key) and one pg_basebackup client-zstd, system-wide"
    mkdir -p "$WORK/profile"
    lock
    for v in wv-zstd-key pgbb-zstd; do
        sync
        # shellcheck disable=SC2046 # a list of words by design
        perf record -a -e cpu-clock -F 499 -o "$WORK/profile/$v.data" -- \
            runuser -u postgres -- env HOME="$WORK/home" PATH="$BIN:$PGBIN:/usr/bin:/bin" \
            $(backup_cmd "$v" "$WORK/profile/$v.dir") >"$WORK/profile/$v.out" 2>"$WORK/profile/$v.err"
        rm -rf "$WORK/profile/$v.dir"
    done
    unlock
    for v in wv-zstd-key pgbb-zstd; do
        perf report -i "$WORK/profile/$v.data" --stdio --sort comm --percent-limit 0.5 \
            >"$WORK/profile/$v.comm.txt" 2>/dev/null
        perf report -i "$WORK/profile/$v.data" --stdio --sort comm,dso,sym --percent-limit 0.3 \
            >"$WORK/profile/$v.sym.txt" 2>/dev/null
    done
    log "profiles in $WORK/profile (kept: run with KEEP=1)"
fi

# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
# stats SCALE KIND VARIANT COLUMN -> "median min max" of that column over the timed runs
stats() {
    awk -F'\t' -v s="$1" -v k="$2" -v v="$3" -v c="$4" '$1 == s && $2 == k && $3 == v {print $c}' "$RAW" |
        sort -g | awk '{a[NR] = $1} END {m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2;
                         print m, a[1], a[NR]}'
}
f1() { awk -v x="$1" 'BEGIN {printf "%.1f", x}'; }
f2() { awk -v x="$1" 'BEGIN {printf "%.2f", x}'; }

# row SCALE KIND VARIANT LABEL: one table row (the stored/tar ratio only for backups); reads `tar`
row() {
    local scale=$1 kind=$2 v=$3 label=$4 med mn mx rss us sy st ratio=""
    read -r med mn mx <<<"$(stats "$scale" "$kind" "$v" 5)"
    read -r rss _ _ <<<"$(stats "$scale" "$kind" "$v" 6)"
    read -r us _ _ <<<"$(stats "$scale" "$kind" "$v" 7)"
    read -r sy _ _ <<<"$(stats "$scale" "$kind" "$v" 8)"
    read -r st _ _ <<<"$(stats "$scale" "$kind" "$v" 9)"
    [[ $kind == backup ]] && ratio=" $(f2 "$(awk -v b="$st" -v t="$tar" 'BEGIN {print b / t}')") |"
    echo "| $label | $(f2 "$med") | $(f2 "$mn") | $(f2 "$mx") | $(f1 "$(awk -v b="$tar" -v t="$med" 'BEGIN {print b / 1e6 / t}')") |" \
        "$(f1 "$(awk -v b="$st" 'BEGIN {print b / 1e6}')") |$ratio" \
        "$(f1 "$(awk -v k="$rss" 'BEGIN {print k / 1024}')") | $(f1 "$(awk -v k="$(cat "$WORK/runs/${kind:0:1}.$scale.$v.0.tree")" 'BEGIN {print k / 1024}')") |" \
        "$(f2 "$(awk -v a="$us" -v b="$sy" 'BEGIN {print a + b}')") |"
}

report() {
    echo "Machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(sed -n 's/^PRETTY_NAME="\(.*\)"$/\1/p' /etc/os-release), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u '+%Y-%m-%d %H:%M UTC')."
    echo "PostgreSQL $PG_VERSION, pgBackRest $PGBR_VERSION, walvault $COMMIT; $RUNS timed runs per tool and size after one untimed run; page cache warm."
    echo "Time = wall clock of the whole process (/usr/bin/time %e); MB/s = the backup's tar data (MB = 10^6 bytes) / median time;"
    echo "RSS = /usr/bin/time's peak RSS of the largest single process (median of the timed runs); tree = peak of the summed RSS of all its processes, sampled every 0.1 s in the untimed run."
    for scale in $SCALES; do
        local tar=${SIZE_TAR[$scale]}
        echo
        echo "### pgbench scale $scale: pg_database_size $(f2 "$(awk -v b="${SIZE_DB[$scale]}" 'BEGIN {print b / 1e9}')") GB, tar data $(f2 "$(awk -v b="$tar" 'BEGIN {print b / 1e9}')") GB"
        echo
        echo "Backups (load average at the start/end of each round: ${LOADS_OF[$scale.backup]}):"
        echo
        echo "| tool, variant | median s | min s | max s | MB/s | stored MB | ratio | peak RSS MB | tree MB | CPU s (user+sys) |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        for v in "${BACKUPS[@]}"; do row "$scale" backup "$v" "${LABEL[$v]}"; done
        echo
        echo "Restores (load average at the start/end of each round: ${LOADS_OF[$scale.restore]}):"
        echo
        echo "| tool, variant | median s | min s | max s | MB/s | restored MB | peak RSS MB | tree MB | CPU s (user+sys) |"
        echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        for v in "${RESTORES[@]}"; do row "$scale" restore "$v" "$(R_LABEL "$v")"; done
        echo
        echo "Verification of the untimed restores (outside timing):"
        for v in "${RESTORES[@]}"; do
            echo "- $v: $(tr '\n' ' ' <"$WORK/verify/$scale.$v" | sed 's/ *$//')"
        done
    done
}

report | tee "${RESULTS:-/dev/null}"
