#!/usr/bin/env bash
# Per-segment wal-push benchmark: walvault's wal-push against the floor (examples/floor.rs:
# read + SHA-256 + the same compression, one thread), pgBackRest's archive-push and wal-rus,
# timed as whole processes on the same real 16 MiB WAL segments in one run.
#
# Run as root on Debian 12 from anywhere inside the walvault checkout:
#
#     bash bench/wal-push.sh
#
# It installs what it is missing (pgbackrest, hyperfine, jq from apt; wal-rus from crates.io),
# builds walvault's release binaries and the floor example, makes WAL with pgbench in a
# throw-away PostgreSQL 15 cluster (unix socket only), and prints a markdown table.
#
# Settings (environment):
#   RUNS=25          timed runs per tool, variant and segment (at least 20)
#   ROUNDS=5         the runs are spread over this many rounds through all variants
#   SEGMENTS=3       segments of each kind
#   PGBIN=/usr/lib/postgresql/15/bin
#   RESULTS=FILE     also write the markdown results there
#   QUIET_LOAD=N     before timing, wait (up to QUIET_WAIT=1800 s) for the load average to drop below N
#   LOCK=FILE        hold this lock (flock) during each timing round and only then, so benchmarks
#                    sharing the machine never time at the same time (default
#                    /tmp/walvault-bench.lock; LOCK= for none)
#   KEEP=1           keep the temporary directory (segments, repositories, raw hyperfine JSON)
#   BASELINE=REV     also time the wal-push of git revision REV (built in a worktree), side by
#                    side, as "walvault@REV" rows (zstd:3 + key, lz4 + key), to show that a change
#                    costs nothing per segment
#   CARGO_TARGET_DIR is honoured for the build.
set -euo pipefail

# Hidden helper used as hyperfine's --prepare and --cleanup (runs as postgres): if the previous
# run's archived file is there, check it is one real file, record its size and delete it, so
# every timed run takes the "new segment" path. A run that archived nothing leaves no size
# behind, and the count check after hyperfine catches it.
if [[ ${1:-} == --take-output ]]; then
    pattern=$2 sizes=$3
    shopt -s nullglob
    found=()
    # shellcheck disable=SC2206 # the glob is meant to expand here
    for f in $pattern; do
        [[ -e $f ]] && found+=("$f")
    done
    if ((${#found[@]} > 1)); then
        echo "more than one archived file matches $pattern: ${found[*]}" >&2
        exit 1
    fi
    if ((${#found[@]} == 1)); then
        size=$(stat -c %s "${found[0]}")
        if ((size < 65536)); then
            echo "archived file ${found[0]} is only $size bytes" >&2
            exit 1
        fi
        echo "$size" >>"$sizes"
        rm -f "${found[0]}"
    fi
    exit 0
fi

RUNS=${RUNS:-25}
ROUNDS=${ROUNDS:-5}
SEGMENTS=${SEGMENTS:-3}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
KEEP=${KEEP:-0}
SEG_BYTES=$((16 * 1024 * 1024))
QUIET_WAIT=${QUIET_WAIT:-1800}

BENCH=wal-push.sh
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
((RUNS >= 20)) || die "RUNS must be at least 20"

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
if [[ ! -x $PGBIN/initdb ]]; then
    need_apt /nonexistent postgresql-15
fi
need_apt pgbackrest pgbackrest
need_apt hyperfine hyperfine
need_apt jq jq
export PATH=$HOME/.cargo/bin:$PATH
command -v cargo >/dev/null || die "cargo is not installed"
need_crate walrus wal-rus "$WAL_RUS_VERSION"

log "building walvault (release) and the floor example"
(cd "$ROOT" && cargo build --release --bins --example floor >&2)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
build_baseline wal-push

# ---------------------------------------------------------------------------------------------
# Work directory (owned by postgres: every tool runs as postgres, as archive_command does)
# ---------------------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/walvault-bench.XXXXXX)
PGDATA=$WORK/pgdata
SOCK=$WORK/sock
mkdir -p "$WORK"/{bin,sock,home,segs/pgbench,segs/random,times,sizes,pgbr-repo,pgbr-lock,pgbr-log,walvault-repo,walvault-base-repo,walrus-repo}
cp "$TARGET/release/wal-push" "$TARGET/release/walvault" "$TARGET/release/examples/floor" \
    "$(command -v walrus)" "$ROOT/bench/wal-push.sh" "$WORK/bin/"
[[ -z ${BASELINE:-} ]] || cp "$BASE_TREE/target/release/wal-push" "$WORK/bin/wal-push-base"
chmod 0755 "$WORK/bin"/*
chown -R postgres:postgres "$WORK"
chmod 0755 "$WORK"
BIN=$WORK/bin

as_pg() { runuser -u postgres -- env HOME="$WORK/home" PATH="$BIN:/usr/bin:/bin" "$@"; }
psql_pg() { as_pg "$PGBIN/psql" -h "$SOCK" -d postgres -X -q -t -A -v ON_ERROR_STOP=1 "$@"; }

cleanup() {
    if [[ -f $PGDATA/postmaster.pid ]]; then
        as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null 2>&1 || true
    fi
    if [[ $KEEP == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# A throw-away cluster and real WAL
# ---------------------------------------------------------------------------------------------
log "starting PostgreSQL in $PGDATA (socket $SOCK only)"
as_pg "$PGBIN/initdb" -D "$PGDATA" -U postgres --no-sync >/dev/null
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -w -l "$WORK/postgres.log" start -o \
    "-c listen_addresses='' -k $SOCK -c wal_level=replica -c max_wal_size=8GB -c min_wal_size=1GB \
     -c checkpoint_timeout=1h -c synchronous_commit=off -c autovacuum=off" >/dev/null

current_segment() { psql_pg -c "select pg_walfile_name(pg_current_wal_lsn())"; }

# Generates WAL with "$@" (a command run repeatedly) until SEGMENTS full segments lie between
# the start and the segment still being written, then copies them (exact names) into $1.
collect() {
    local dest=$1 start tail names tries=0
    shift
    psql_pg -c "checkpoint" -c "select pg_switch_wal()" >/dev/null
    start=$(current_segment)
    while :; do
        "$@"
        tail=$(current_segment)
        # Segments strictly after the first and before the one being written are complete and
        # hold only this workload's WAL (the one switched away from last is zero-padded).
        names=$(psql_pg -c "select name from pg_ls_waldir() where name ~ '^[0-9A-F]{24}$'
                             and name > '$start' and name < '$tail' order by name limit $SEGMENTS")
        (($(wc -w <<<"$names") >= SEGMENTS)) && break
        ((++tries < 50)) || die "could not make $SEGMENTS segments of WAL for $dest"
    done
    for n in $names; do
        as_pg cp "$PGDATA/pg_wal/$n" "$dest/$n"
        [[ $(stat -c %s "$dest/$n") == "$SEG_BYTES" ]] || die "$n is not a 16 MiB segment"
    done
    psql_pg -c "select pg_switch_wal()" >/dev/null
    log "$dest: ${names//$'\n'/ }"
}

log "making ordinary pgbench WAL (pgbench -i -s 20, then pgbench -T runs)"
as_pg "$PGBIN/pgbench" -h "$SOCK" -i -s 20 -q postgres >/dev/null 2>&1
collect "$WORK/segs/pgbench" as_pg "$PGBIN/pgbench" -h "$SOCK" -c 2 -j 2 -T 10 -n postgres >/dev/null

log "making less compressible WAL (rows of independent md5(random()) hex text)"
psql_pg -c "create table noise (id bigint, t text)"
noise_insert() {
    psql_pg -c "insert into noise select g, $(printf 'md5(random()::text)||%.0s' 1 2 3 4 5 6 7)md5(random()::text)
                from generate_series(1, 100000) g" >/dev/null
}
collect "$WORK/segs/random" noise_insert

# pgBackRest needs a stanza, made against the running cluster.
cat >"$WORK/pgbackrest.conf" <<EOF
[global]
repo1-path=$WORK/pgbr-repo
lock-path=$WORK/pgbr-lock
log-path=$WORK/pgbr-log
spool-path=$WORK/pgbr-lock
log-level-console=warn
log-level-stderr=warn
log-level-file=off

[bench]
pg1-path=$PGDATA
pg1-socket-path=$SOCK
pg1-user=postgres
EOF
chown postgres:postgres "$WORK/pgbackrest.conf"
as_pg pgbackrest --config="$WORK/pgbackrest.conf" --stanza=bench stanza-create >&2
# Archived WAL goes under archive/bench/<db-version>-<db-id>/ (from archive.info).
PGBR_VER=$(awk -F= '/^db-version=/ {gsub(/"/, "", $2); v=$2} /^db-id=/ {i=$2} END {print v "-" i}' \
    "$WORK/pgbr-repo/archive/bench/archive.info")

# The segments are copied: nothing below needs the server, and an idle server is still noise.
as_pg "$PGBIN/pg_ctl" -D "$PGDATA" -m fast -w stop >/dev/null

as_pg "$BIN/walvault" keygen "$WORK/key" >/dev/null

# ---------------------------------------------------------------------------------------------
# Variants: id, label, codec (for the floor ratio), command (words), archived-file glob
# ---------------------------------------------------------------------------------------------
VARIANTS=(
    floor-zstd floor-zstd-mmap floor-lz4 floor-none
    wv-zstd wv-zstd-key wv-zstd1-key wv-lz4 wv-lz4-key wv-none wv-none-key
    pgbr-zst pgbr-lz4
    walrus-zstd walrus-zstd3
)
[[ -z ${BASELINE:-} ]] || VARIANTS+=(base-zstd-key base-lz4-key)
declare -A LABEL=(
    [floor-zstd]="floor, zstd:3" [floor-zstd-mmap]="floor, zstd:3 one-shot (--mmap)" [floor-lz4]="floor, lz4" [floor-none]="floor, none (read + SHA-256)"
    [wv-zstd]="walvault, zstd:3" [wv-zstd-key]="walvault, zstd:3 + key"
    [wv-zstd1-key]="walvault, zstd:1 + key (context only)"
    [wv-lz4]="walvault, lz4" [wv-lz4-key]="walvault, lz4 + key"
    [wv-none]="walvault, none" [wv-none-key]="walvault, none + key"
    [pgbr-zst]="pgBackRest $(pgbackrest version | awk '{print $2}'), zst" [pgbr-lz4]="pgBackRest, lz4"
    [walrus-zstd]="wal-rus $(walrus --version 2>/dev/null | awk '{print $NF}'), zstd (its default level 1)"
    [walrus-zstd3]="wal-rus, zstd level 3 (context only)"
    [base-zstd-key]="walvault@${BASE_REV:-}, zstd:3 + key" [base-lz4-key]="walvault@${BASE_REV:-}, lz4 + key"
)
declare -A CODEC=(
    [floor-zstd]=zstd [floor-zstd-mmap]=zstd [floor-lz4]=lz4 [floor-none]=none
    [wv-zstd]=zstd [wv-zstd-key]=zstd [wv-zstd1-key]=zstd [wv-lz4]=lz4 [wv-lz4-key]=lz4 [wv-none]=none [wv-none-key]=none
    [pgbr-zst]=zstd [pgbr-lz4]=lz4 [walrus-zstd]=zstd [walrus-zstd3]=zstd
    [base-zstd-key]=zstd [base-lz4-key]=lz4
)

# command_for VARIANT SEGMENT_PATH: the exact command timed (run by hyperfine without a shell).
command_for() {
    local v=$1 seg=$2 wv="$BIN/wal-push --repo file://$WORK/walvault-repo"
    local pgbr="pgbackrest --config=$WORK/pgbackrest.conf --stanza=bench"
    case $v in
    floor-*-mmap) echo "$BIN/floor --mmap ${CODEC[$v]} $seg" ;;
    floor-*) echo "$BIN/floor ${CODEC[$v]} $seg" ;;
    wv-zstd) echo "$wv --compression zstd $seg" ;;
    wv-lz4) echo "$wv --compression lz4 $seg" ;;
    wv-none) echo "$wv --compression none $seg" ;;
    wv-zstd1-key) echo "$wv --compression zstd:1 --encryption-key-file $WORK/key $seg" ;;
    wv-*-key) echo "$wv --compression ${CODEC[$v]} --encryption-key-file $WORK/key $seg" ;;
    base-*-key) echo "$BIN/wal-push-base --repo file://$WORK/walvault-base-repo --compression ${CODEC[$v]} --encryption-key-file $WORK/key $seg" ;;
    pgbr-zst) echo "$pgbr --compress-type=zst archive-push $seg" ;;
    pgbr-lz4) echo "$pgbr --compress-type=lz4 archive-push $seg" ;;
    walrus-zstd) echo "$BIN/walrus wal-push $seg" ;;
    walrus-zstd3) echo "$BIN/walrus --config $WORK/walrus-zstd3.env wal-push $seg" ;;
    esac
}

# output_glob VARIANT SEGMENT_NAME: where the variant's archived copy lands.
output_glob() {
    local v=$1 name=$2
    case $v in
    floor-*) echo "" ;;
    wv-*) echo "$WORK/walvault-repo/wal/${name:0:16}/$name" ;;
    base-*) echo "$WORK/walvault-base-repo/wal/${name:0:16}/$name" ;;
    pgbr-*) echo "$WORK/pgbr-repo/archive/bench/$PGBR_VER/${name:0:16}/$name-*" ;;
    walrus-*) echo "$WORK/walrus-repo/wal_005/$name.*" ;;
    esac
}

# wal-rus takes its settings from the environment (as the brief of this benchmark gives them),
# plus a dotenv file for the level-3 variant (wal-rus's own default zstd level is 1).
export WALG_FILE_PREFIX=$WORK/walrus-repo WALG_COMPRESSION_METHOD=zstd
echo "WALG_COMPRESSION_LEVEL=3" >"$WORK/walrus-zstd3.env"
chown postgres:postgres "$WORK/walrus-zstd3.env"

take_output() { as_pg bash "$BIN/wal-push.sh" --take-output "$@"; }

# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------
# The machine is shared: rather than one long block per tool, the runs are spread over ROUNDS
# rounds, each running every variant on every segment for RUNS/ROUNDS runs, so that a burst of
# load elsewhere falls on all tools alike.
ROUND_LOADS=()
bench_lock
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
PER_ROUND=$(((RUNS + ROUNDS - 1) / ROUNDS))
RUNS=$((PER_ROUND * ROUNDS))
log "timing: $ROUNDS rounds x $PER_ROUND runs x ${#VARIANTS[@]} variants x $SEGMENTS segments x 2 kinds (load: $(cut -d' ' -f1-3 /proc/loadavg))"
for round in $(seq "$ROUNDS"); do
    ((round == 1)) || bench_lock
    ROUND_LOADS+=("$(cut -d' ' -f1 /proc/loadavg)")
    for kind in pgbench random; do
        for seg in "$WORK/segs/$kind"/*; do
            name=$(basename "$seg")
            for v in "${VARIANTS[@]}"; do
                cmd=$(command_for "$v" "$seg")
                glob=$(output_glob "$v" "$name")
                sizes=$WORK/sizes/$kind.$v.$name
                json=$WORK/times/$kind.$v.$name.r$round.json
                # One untimed run first: warms the caches and proves the command works.
                # shellcheck disable=SC2086 # cmd is a list of words by design
                as_pg $cmd >"$WORK/times/$kind.$v.$name.first" 2>&1 ||
                    die "$v failed on $name: $(cat "$WORK/times/$kind.$v.$name.first")"
                prep=(--prepare true)
                if [[ -n $glob ]]; then
                    [[ -n $(compgen -G "$glob") ]] || die "$v archived nothing for $name ($glob)"
                    take_output "$glob" /dev/null
                    [[ -z $(compgen -G "$glob") ]] || die "cannot delete $glob"
                    prep=(--prepare "bash $BIN/wal-push.sh --take-output '$glob' $sizes"
                        --cleanup "bash $BIN/wal-push.sh --take-output '$glob' $sizes")
                fi
                as_pg hyperfine -N --style none --runs "$PER_ROUND" "${prep[@]}" \
                    --export-json "$json" "$cmd" >/dev/null
                if [[ -n $glob ]]; then
                    got=$(wc -l <"$sizes")
                    ((got == round * PER_ROUND)) || die "$v archived $got of $((round * PER_ROUND)) timed runs of $name"
                else
                    # The floor stores nothing: its size and internal time come from its own output.
                    # shellcheck disable=SC2086 # cmd is a list of words by design
                    for _ in $(seq "$PER_ROUND"); do as_pg $cmd; done >>"$WORK/times/$kind.$v.$name.floor"
                    awk '{print $4}' "$WORK/times/$kind.$v.$name.floor" >"$sizes"
                fi
            done
        done
    done
    ROUND_LOADS[-1]="${ROUND_LOADS[-1]}-$(cut -d' ' -f1 /proc/loadavg)"
    bench_unlock
    log "round $round of $ROUNDS done (load: $(cut -d' ' -f1-3 /proc/loadavg))"
done

# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) exit 1; print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
# All timed runs of a variant on all segments of a kind, in ms.
times_ms() { jq -r '.results[0].times[] * 1000' "$WORK/times/$1.$2".*.json; }
# Mean CPU time (user + system) per run, in ms.
cpu_ms() { jq -r '(.results[0].user + .results[0].system) * 1000' "$WORK/times/$1.$2".*.json | awk '{s+=$1} END {print s/NR}'; }
declare -A MED MIN SIZE INTERNAL CPU
for kind in pgbench random; do
    for v in "${VARIANTS[@]}"; do
        MED[$kind.$v]=$(times_ms "$kind" "$v" | median)
        MIN[$kind.$v]=$(times_ms "$kind" "$v" | sort -g | head -1)
        CPU[$kind.$v]=$(cpu_ms "$kind" "$v")
        SIZE[$kind.$v]=$(cat "$WORK/sizes/$kind.$v".* | awk '{s+=$1} END {printf "%.2f", s/NR/1048576}')
        if [[ $v == floor-* ]]; then
            INTERNAL[$kind.$v]=$(cat "$WORK/times/$kind.$v".*.floor | awk '{print $6}' | median)
        fi
    done
done

fmt() { awk -v x="$1" 'BEGIN {printf "%.1f", x}'; }
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }
min2() { awk -v a="$1" -v b="$2" 'BEGIN {print (a < b) ? a : b}'; }
# stat_of median|min KIND VARIANT
stat_of() { if [[ $1 == min ]]; then echo "${MIN[$2.$3]}"; else echo "${MED[$2.$3]}"; fi; }
verdict() { awk -v r="$1" -v t="$2" 'BEGIN {print (r <= t) ? "met" : "**missed**"}'; }

report() {
    echo "Machine: $(nproc) cores, $(sed -n 's/^PRETTY_NAME="\(.*\)"$/\1/p' /etc/os-release), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u '+%Y-%m-%d %H:%M UTC')."
    echo "$RUNS timed runs per tool and segment (in $ROUNDS rounds), $SEGMENTS segments of 16 MiB per kind; wall-clock medians and minimums over all runs of a kind, whole processes; CPU ms = mean user + system time of a run."
    echo "Load average: $LOAD_BEFORE when timing started, $(cut -d' ' -f1-3 /proc/loadavg) at the end; 1-minute load at the start-end of each round: ${ROUND_LOADS[*]}."
    echo
    echo "| WAL | tool, variant | median ms | min ms | CPU ms | stored MiB | vs floor (same codec) | vs best of pgBackRest zst / wal-rus |"
    echo "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |"
    for kind in pgbench random; do
        local best
        best=$(min2 "${MED[$kind.pgbr-zst]}" "${MED[$kind.walrus-zstd]}")
        for v in "${VARIANTS[@]}"; do
            local vs_floor="" vs_best="" med
            med=$(fmt "${MED[$kind.$v]}")
            if [[ $v == floor-* ]]; then
                med="$med (internal $(fmt "${INTERNAL[$kind.$v]}"))"
            elif [[ $v != wv-zstd1-key && $v != walrus-zstd ]]; then # zstd level 1: no floor for it
                vs_floor="$(ratio "${MED[$kind.$v]}" "${MED[$kind.floor-${CODEC[$v]}]}")x"
            fi
            if [[ ${CODEC[$v]} == zstd && $v == wv-* ]]; then
                vs_best="$(ratio "${MED[$kind.$v]}" "$best")x"
            fi
            echo "| $kind | ${LABEL[$v]} | $med | $(fmt "${MIN[$kind.$v]}") | $(fmt "${CPU[$kind.$v]}") | ${SIZE[$kind.$v]} | $vs_floor | $vs_best |"
        done
    done
    echo
    echo "Targets: walvault zstd:3 + key no slower than the faster of pgBackRest zst and wal-rus (as configured above," \
        "no key), and at most 1.2x the floor (zstd:3). Checked on medians and, as the machine's load shows, on minimums:"
    echo
    local kind stat
    for kind in pgbench random; do
        for stat in median min; do
            local wv pgbr walrus fl oneshot best who r1 r2 r3
            wv=$(stat_of "$stat" "$kind" wv-zstd-key)
            pgbr=$(stat_of "$stat" "$kind" pgbr-zst)
            walrus=$(stat_of "$stat" "$kind" walrus-zstd)
            fl=$(stat_of "$stat" "$kind" floor-zstd)
            oneshot=$(stat_of "$stat" "$kind" floor-zstd-mmap)
            best=$(min2 "$pgbr" "$walrus")
            who=$(awk -v a="$pgbr" -v b="$walrus" 'BEGIN {print (a < b) ? "pgBackRest zst" : "wal-rus zstd"}')
            r1=$(ratio "$wv" "$best")
            r2=$(ratio "$wv" "$fl")
            r3=$(ratio "$wv" "$oneshot")
            echo "- $kind WAL, ${stat}s: walvault $(fmt "$wv") ms; vs $who $(fmt "$best") ms = ${r1}x:" \
                "$(verdict "$r1" 1.0); vs floor $(fmt "$fl") ms = ${r2}x: $(verdict "$r2" 1.2);" \
                "vs one-shot floor $(fmt "$oneshot") ms = ${r3}x: $(verdict "$r3" 1.2)."
        done
    done
}

baseline_report() {
    [[ -n ${BASELINE:-} ]] || return 0
    echo
    echo "This checkout ($(built_commit)) against walvault@$BASE_REV, side by side in the same rounds (medians; ratio < 1 is faster):"
    echo
    local kind
    for kind in pgbench random; do
        echo "- $kind WAL: zstd:3 + key $(fmt "${MED[$kind.wv-zstd-key]}") vs $(fmt "${MED[$kind.base-zstd-key]}") ms = $(ratio "${MED[$kind.wv-zstd-key]}" "${MED[$kind.base-zstd-key]}")x;" \
            "lz4 + key $(fmt "${MED[$kind.wv-lz4-key]}") vs $(fmt "${MED[$kind.base-lz4-key]}") ms = $(ratio "${MED[$kind.wv-lz4-key]}" "${MED[$kind.base-lz4-key]}")x;" \
            "CPU $(fmt "${CPU[$kind.wv-zstd-key]}") vs $(fmt "${CPU[$kind.base-zstd-key]}") ms."
    done
}

{ report; baseline_report; } | tee "${RESULTS:-/dev/null}"
