#!/usr/bin/env bash
# Logical dump benchmark (issue 15, point 5): `walvault dump` (pg_dump -Fc --compress=0 in an
# exported snapshot, every table's rows counted in pg_dump's output, the stream compressed with
# zstd:3 and encrypted with AES-256-GCM into the repository) against `pg_dump -Fc` (its default
# compression: gzip level 6 in PostgreSQL 15) and `pg_dump -Fc --compress=0 | zstd -3 -T0`, on
# the same pgbench database, interleaved in the same rounds; walvault also to moto's S3 server on
# loopback (S3=1), another revision of walvault beside it (BASELINE=REV), and, as context, the
# count(*) pass alone (psql, one session: what walvault's second session did beside pg_dump
# before 0c24655, and what it still does for a table its reading of the output misses).
#
# Run as root on Debian 12 from anywhere inside the walvault checkout:
#
#     bash bench/dump.sh
#
# It installs what it is missing (postgresql-15, zstd, time, jq, curl from apt), builds
# walvault's release binary (cargo build --release --locked --bin walvault), makes a throw-away
# PostgreSQL 15 cluster run as `postgres` on a unix socket only, loads `pgbench -i -s SCALE`
# into a database `bench`, and prints a markdown table. Everything it starts (the postmaster,
# moto) is stopped by pid on exit, and its temporary directory removed.
#
# Measured per run, every command run as postgres under GNU time (`/usr/bin/time -f '%e %M %U
# %S'`): wall time; CPU = user + system of the whole process tree (time's rusage of its waited
# children: walvault + pg_dump, or bash + pg_dump + zstd); peak RSS two ways: "largest" is
# time's %M (ru_maxrss of the children: the largest single process), "tree" the peak of the
# summed RSS of every process below the command (runuser, time, bash wrappers left out), sampled
# every 0.2 s with ps; the server's CPU (the backends serving pg_dump and walvault's counting
# session, read off the postmaster's and its children's /proc stat, reaped children included);
# the storage side's CPU (moto) for the S3 variant; the bytes stored. Each output is deleted
# after its run (outside the timing).
#
# Settings (environment):
#   SCALE=50         pgbench scale (50 is about 750 MB)
#   RUNS=5           timed rounds (at least 3), after one untimed run of each variant
#   S3=1             also time walvault dump to moto's S3 server on loopback (0: skip);
#                    MOTO=/work/main/.tools/moto/bin/moto_server by default
#   PGBIN=/usr/lib/postgresql/15/bin
#   BASELINE=REV     also time `walvault dump` of git revision REV (built in a worktree) to
#                    file://, side by side with the working tree's, in the same rounds
#   LOCK=/tmp/walvault-bench.lock   every timed round holds this lock (flock), nothing else does
#   QUIET_LOAD=N     before each round, wait (up to QUIET_WAIT=300 s) for the load average < N
#   RESULTS=FILE     also write the markdown results there
#   KEEP=1           keep the temporary directory (raw results, logs, repositories)
#   CARGO_TARGET_DIR is honoured for the build.
set -euo pipefail

SCALE=${SCALE:-50}
RUNS=${RUNS:-5}
S3=${S3:-1}
MOTO=${MOTO:-/work/main/.tools/moto/bin/moto_server}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
KEEP=${KEEP:-0}

BENCH=dump.sh
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
((RUNS >= 3)) || die "RUNS must be at least 3"

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
[[ -x $PGBIN/initdb ]] || need_apt /nonexistent postgresql-15
need_apt zstd zstd
need_apt /usr/bin/time time
need_apt jq jq
need_apt curl curl
need_apt flock util-linux
if ((S3 == 1)) && [[ ! -x $MOTO ]]; then
    log "no moto server at $MOTO: the S3 variant is skipped"
    S3=0
fi
export PATH=$HOME/.cargo/bin:$PATH
command -v cargo >/dev/null || die "cargo is not installed"

log "building walvault (release)"
(cd "$ROOT" && cargo build --release --locked --bin walvault >&2)
COMMIT=$(built_commit)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
if [[ -n ${BASELINE:-} ]]; then
    BASE_REV=$(git -C "$ROOT" rev-parse --short "$BASELINE") || die "BASELINE=$BASELINE is not a revision"
    BASE_TREE=/tmp/walvault-baseline-$BASE_REV
    log "building the baseline walvault at $BASE_REV in $BASE_TREE"
    [[ -d $BASE_TREE ]] || git -C "$ROOT" worktree add --detach "$BASE_TREE" "$BASE_REV" >&2
    (cd "$BASE_TREE" && CARGO_TARGET_DIR=$BASE_TREE/target cargo build --release --locked --bin walvault >&2)
fi

# ---------------------------------------------------------------------------------------------
# Work directory, owned by postgres. The cluster, the dump files and the file:// repository are
# on the same filesystem (the one holding /tmp).
# ---------------------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/walvault-dbench.XXXXXX)
PGDATA=$WORK/pgdata
SOCK=$WORK/sock
BIN=$WORK/bin
OUT=$WORK/out
mkdir -p "$WORK"/{bin,sock,home,out,wv-repo,wv-base-repo,runs}
cp "$TARGET/release/walvault" "$BIN/"
[[ -z ${BASELINE:-} ]] || cp "$BASE_TREE/target/release/walvault" "$BIN/walvault-base"
chmod 0755 "$BIN"/*
chown -R postgres:postgres "$WORK"
chmod 0755 "$WORK"

as_pg() { runuser -u postgres -- env HOME="$WORK/home" PATH="$BIN:$PGBIN:/usr/bin:/bin" "$@"; }
psql_pg() { as_pg psql -h "$SOCK" -p 5432 -d "${DB:-postgres}" -X -q -t -A -v ON_ERROR_STOP=1 "$@"; }

MOTO_PID=""
stop_pid() { # stop_pid PID SIGNAL: signals PID and waits up to 10 s for it to go
    local pid=$1 sig=$2
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
}
cleanup() {
    [[ -f $PGDATA/postmaster.pid ]] && stop_pid "$(head -1 "$PGDATA/postmaster.pid")" INT # fast shutdown
    [[ -n $MOTO_PID ]] && stop_pid "$MOTO_PID" TERM
    if [[ $KEEP == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

# ---------------------------------------------------------------------------------------------
# The cluster and the database (wal_level=minimal: nothing here needs WAL archiving)
# ---------------------------------------------------------------------------------------------
log "initdb $PGDATA (socket $SOCK only)"
as_pg initdb -D "$PGDATA" -U postgres -A trust --no-sync >/dev/null
cat >>"$PGDATA/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$SOCK'
port = 5432
wal_level = minimal
max_wal_senders = 0
max_wal_size = 4GB
checkpoint_timeout = 1h
autovacuum = off
EOF
as_pg pg_ctl -D "$PGDATA" -w -t 300 -l "$WORK/postgres.log" start >/dev/null
PM_PID=$(head -1 "$PGDATA/postmaster.pid")

log "pgbench -i -s $SCALE into database bench"
as_pg createdb -h "$SOCK" -p 5432 bench
as_pg pgbench -h "$SOCK" -p 5432 -i -s "$SCALE" -q bench >/dev/null 2>&1
DB=bench psql_pg -c "vacuum analyze" -c "checkpoint" >/dev/null
DB_BYTES=$(psql_pg -c "select pg_database_size('bench')")
TABLES=$(DB=bench psql_pg -c "select string_agg(relname || ' ' || pg_size_pretty(pg_total_relation_size(oid)), ', ' order by relname)
                             from pg_class where relkind = 'r' and relname like 'pgbench%'")
log "pg_database_size('bench') = $DB_BYTES bytes ($TABLES)"

warm_data() { # reads the data directory into the page cache (not timed)
    find "$PGDATA" -type f -print0 | xargs -0 cat >/dev/null
}

# ---------------------------------------------------------------------------------------------
# Repositories
# ---------------------------------------------------------------------------------------------
as_pg walvault keygen "$WORK/key" >/dev/null
cat >"$WORK/wv-file.toml" <<EOF
repo = "file://$WORK/wv-repo"
compression = "zstd"
encryption_key_file = "$WORK/key"
EOF
sed "s|/wv-repo\"|/wv-base-repo\"|" "$WORK/wv-file.toml" >"$WORK/wv-base.toml"
if ((S3 == 1)); then
    PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    log "starting moto on 127.0.0.1:$PORT"
    "$MOTO" -H 127.0.0.1 -p "$PORT" >"$WORK/moto.log" 2>&1 &
    MOTO_PID=$!
    for _ in $(seq 300); do
        curl -s -o /dev/null "http://127.0.0.1:$PORT/" && break
        kill -0 "$MOTO_PID" 2>/dev/null || die "moto exited: $(tail -5 "$WORK/moto.log")"
        sleep 0.2
    done
    [[ $(curl -s -o /dev/null -w '%{http_code}' -X PUT "http://127.0.0.1:$PORT/bench") == 200 ]] ||
        die "cannot create the bucket in moto"
    cat >"$WORK/wv-s3.toml" <<EOF
repo = "s3://bench/dumps"
compression = "zstd"
encryption_key_file = "$WORK/key"
[storage]
aws_endpoint = "http://127.0.0.1:$PORT"
aws_allow_http = "true"
aws_access_key_id = "walvault-bench"
aws_secret_access_key = "walvault-bench-secret"
aws_region = "us-east-1"
EOF
fi
chown postgres:postgres "$WORK"/*.toml

# ---------------------------------------------------------------------------------------------
# Variants
# ---------------------------------------------------------------------------------------------
VARIANTS=(pgfc pgzstd wv-file)
[[ -z ${BASELINE:-} ]] || VARIANTS+=(wv-base)
((S3 == 1)) && VARIANTS+=(wv-s3)
VARIANTS+=(counts)
PG_VERSION=$("$PGBIN/pg_dump" --version | awk '{print $3}')
ZSTD_VERSION=$(zstd --version | sed -n 's/.* v\([0-9.]*\),.*/\1/p')
declare -A LABEL=(
    [pgfc]="pg_dump $PG_VERSION -Fc (default: gzip level 6)"
    [pgzstd]="pg_dump -Fc --compress=0 \\| zstd $ZSTD_VERSION -3 -T0"
    [wv-file]="walvault dump, zstd:3 + key, file://"
    [wv-s3]="walvault dump, zstd:3 + key, S3 (moto, loopback)"
    [wv-base]="baseline: walvault ${BASE_REV:-} dump, zstd:3 + key, file://"
    [counts]="context: a count(*) pass alone (psql, one session; walvault's second session before 0c24655)"
)
CONN="host=$SOCK port=5432 user=postgres dbname=bench"
COUNT_TABLES=$(DB=bench psql_pg -c "select format('%I.%I', n.nspname, c.relname) from pg_class c
    join pg_namespace n on n.oid = c.relnamespace where c.relkind in ('r', 'p') and c.relpersistence <> 't'
    and n.nspname not in ('pg_catalog', 'information_schema') and n.nspname not like 'pg\\_toast%' order by 1")
variant_cmd() { # variant_cmd VARIANT: sets CMD, the command timed (run as postgres)
    case $1 in
    pgfc) CMD=(pg_dump -h "$SOCK" -p 5432 -U postgres -d bench -Fc -f "$OUT/pgfc.dump") ;;
    pgzstd) CMD=(bash -c "set -o pipefail; pg_dump -h $SOCK -p 5432 -U postgres -d bench -Fc --compress=0 | zstd -3 -T0 -q >$OUT/pgzstd.dump.zst") ;;
    wv-file) CMD=(walvault dump --config "$WORK/wv-file.toml" -d "$CONN" --json -q) ;;
    wv-s3) CMD=(walvault dump --config "$WORK/wv-s3.toml" -d "$CONN" --json -q) ;;
    wv-base) CMD=(walvault-base dump --config "$WORK/wv-base.toml" -d "$CONN" --json -q) ;;
    counts) # what walvault's second session did beside pg_dump: one count(*) per table, in one snapshot
        CMD=(psql -h "$SOCK" -p 5432 -U postgres -d bench -X -q -t -A -v ON_ERROR_STOP=1
            -c "begin isolation level repeatable read read only")
        local t
        for t in $COUNT_TABLES; do CMD+=(-c "select count(*) from $t"); done
        CMD+=(-c "commit")
        ;;
    esac
}

# The peak of the summed RSS of the process tree below ROOT (but runuser, time and bash), and of
# its largest walvault process, in kB, sampled every 0.2 s.
tree_rss() { # tree_rss ROOT_PID OUT_FILE
    local root=$1 out=$2 peak=0 wpeak=0 s w
    set +e
    while kill -0 "$root" 2>/dev/null; do
        read -r s w < <(ps -e -o pid=,ppid=,rss=,comm= | awk -v r="$root" '
            {p[$1] = $2; m[$1] = $3; c[$1] = $4}
            END {for (i in p) {j = i; while (j > 1 && j != r) j = p[j];
                 if (j == r && c[i] != "runuser" && c[i] != "time" && c[i] != "bash") {s += m[i];
                 if (c[i] ~ /^walvault/ && m[i] > w) w = m[i]}}; print s + 0, w + 0}')
        ((s > peak)) && peak=$s
        ((w > wpeak)) && wpeak=$w
        sleep 0.2
    done
    echo "$peak $wpeak" >"$out"
}

ticks_of() { # ticks_of PID [WITH_REAPED]: utime + stime (+ cutime + cstime), in clock ticks
    local f
    read -r -a f 2>/dev/null <"/proc/$1/stat" || { echo 0; return; }
    if [[ ${2:-} == 1 ]]; then echo $((f[13] + f[14] + f[15] + f[16])); else echo $((f[13] + f[14])); fi
}
server_ticks() { # the postmaster with its reaped children, plus its live children
    local t c
    t=$(ticks_of "$PM_PID" 1)
    for c in $(ps -o pid= --ppid "$PM_PID"); do t=$((t + $(ticks_of "$c"))); done
    echo "$t"
}
moto_ticks() { if [[ -n $MOTO_PID ]]; then ticks_of "$MOTO_PID" 1; else echo 0; fi; }
HZ=$(getconf CLK_TCK)

RAW=$WORK/runs.tsv # variant run seconds maxrss_kb user sys tree_kb walvault_kb server_s storage_s stored raw
: >"$RAW"

# stored_of VARIANT PREFIX: STORED (bytes), RAWB (pg_dump's bytes, walvault only); deletes the output
stored_of() {
    local v=$1 pfx=$2 id
    RAWB=""
    case $v in
    pgfc) STORED=$(stat -c %s "$OUT/pgfc.dump"); rm -f "$OUT/pgfc.dump" ;;
    pgzstd) STORED=$(stat -c %s "$OUT/pgzstd.dump.zst"); rm -f "$OUT/pgzstd.dump.zst" ;;
    counts) STORED=0 ;;
    wv-*)
        id=$(jq -r .id "$pfx.out")
        [[ -n $id && $id != null ]] || die "$v printed no dump id: $(cat "$pfx.out")"
        RAWB=$(jq -r .raw_bytes "$pfx.out")
        if [[ $v == wv-file || $v == wv-base ]]; then
            # what is on disk for this dump: its objects and its descriptor
            local repo=$WORK/wv-repo
            [[ $v == wv-file ]] || repo=$WORK/wv-base-repo
            STORED=$(find "$repo/dumps/$id" "$repo/dumps/$id.json" -type f -printf '%s\n' |
                awk '{s += $1} END {print s}')
        else
            STORED=$(($(jq -r .stored_bytes "$pfx.out") + $(stat -c %s "$pfx.out")))
        fi
        # The first run is kept for the check below; the others are deleted.
        if [[ ${KEEP_ID[$v]:-} != "" ]]; then
            as_pg walvault delete --config "$WORK/$v.toml" --dump "$id" --confirm -q >"$pfx.delete" 2>&1 ||
                die "cannot delete dump $id: $(cat "$pfx.delete")"
        else
            KEEP_ID[$v]=$id
        fi
        ;;
    esac
}
declare -A KEEP_ID

run_one() { # run_one VARIANT RUN (RUN 0 = the untimed first run)
    local v=$1 r=$2 pfx=$WORK/runs/$1.$2 pid spid s0 m0 s1 m1
    variant_cmd "$v"
    sync # the previous run's dirty pages are not this run's
    s0=$(server_ticks)
    m0=$(moto_ticks)
    as_pg /usr/bin/time -o "$pfx.time" -f '%e %M %U %S' "${CMD[@]}" >"$pfx.out" 2>"$pfx.err" &
    pid=$!
    tree_rss "$pid" "$pfx.tree" &
    spid=$!
    wait "$pid" || die "$v failed: ${CMD[*]} ($(tail -5 "$pfx.err"))"
    wait "$spid"
    sleep 0.3 # the backends' exit reaped by the postmaster
    s1=$(server_ticks)
    m1=$(moto_ticks)
    stored_of "$v" "$pfx"
    if ((r > 0)); then
        printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$v" "$r" "$(tr ' ' '\t' <"$pfx.time")" \
            "$(tr ' ' '\t' <"$pfx.tree")" \
            "$(awk -v t=$((s1 - s0)) -v h="$HZ" 'BEGIN {printf "%.2f", t / h}')" \
            "$(awk -v t=$((m1 - m0)) -v h="$HZ" 'BEGIN {printf "%.2f", t / h}')" \
            "$STORED" "${RAWB:--}" >>"$RAW"
    fi
}

# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------
warm_data
log "one untimed run of each variant (warms the page cache, proves the command)"
for v in "${VARIANTS[@]}"; do
    run_one "$v" 0
done

# The first walvault dump, checked: dump-fetch writes the custom-format file (verified), which
# pg_restore lists; the descriptor's row count of pgbench_accounts is the table's.
as_pg walvault dump-fetch --config "$WORK/wv-file.toml" "${KEEP_ID[wv-file]}" --database bench \
    --output "$WORK/check.dump" -q >/dev/null
RESTORE_LIST=$(as_pg pg_restore -l "$WORK/check.dump" | grep -c 'TABLE DATA public pgbench_')
((RESTORE_LIST == 4)) || die "pg_restore -l of the fetched dump lists $RESTORE_LIST pgbench tables, not 4"
ACCOUNTS=$(jq -r '.databases[0].tables[] | select(.table == "pgbench_accounts") | .rows' "$WORK/runs/wv-file.0.out")
((ACCOUNTS == SCALE * 100000)) || die "the descriptor counts $ACCOUNTS rows in pgbench_accounts"
rm -f "$WORK/check.dump"
for v in "${!KEEP_ID[@]}"; do
    as_pg walvault delete --config "$WORK/$v.toml" --dump "${KEEP_ID[$v]}" --confirm -q >/dev/null
done
log "checked: dump-fetch + pg_restore -l lists the 4 tables; $ACCOUNTS rows of pgbench_accounts counted"

LOADS=()
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
START=$(date -u '+%Y-%m-%d %H:%M')
for r in $(seq "$RUNS"); do
    warm_data
    bench_lock
    LOADS+=("$(cut -d' ' -f1 /proc/loadavg)")
    # The order rotates each round, so no variant always follows the same one.
    n=${#VARIANTS[@]}
    for ((i = 0; i < n; i++)); do
        run_one "${VARIANTS[((i + r) % n)]}" "$r"
    done
    LOADS[-1]="${LOADS[-1]}-$(cut -d' ' -f1 /proc/loadavg)"
    bench_unlock
    log "round $r of $RUNS done (load ${LOADS[-1]})"
done
END=$(date -u '+%H:%M')

# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
col() { awk -F'\t' -v v="$1" -v c="$2" '$1 == v {print $c}' "$RAW"; }
median() { sort -g | awk '{a[NR]=$1} END {if (NR == 0) exit 1; print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
cpu_col() { awk -F'\t' -v v="$1" '$1 == v {print $5 + $6}' "$RAW"; }
declare -A T TMIN TMAX CPU SRV STO RSS TREE WVRSS STORED RAWM
for v in "${VARIANTS[@]}"; do
    T[$v]=$(col "$v" 3 | median)
    TMIN[$v]=$(col "$v" 3 | sort -g | head -1)
    TMAX[$v]=$(col "$v" 3 | sort -g | tail -1)
    CPU[$v]=$(cpu_col "$v" | median)
    RSS[$v]=$(col "$v" 4 | median)
    TREE[$v]=$(col "$v" 7 | median)
    WVRSS[$v]=$(col "$v" 8 | sort -g | tail -1)
    SRV[$v]=$(col "$v" 9 | median)
    STO[$v]=$(col "$v" 10 | median)
    STORED[$v]=$(col "$v" 11 | median)
    RAWM[$v]=$(col "$v" 12 | median 2>/dev/null || echo -)
done
fmt1() { awk -v x="$1" 'BEGIN {printf "%.1f", x}'; }
fmt2() { awk -v x="$1" 'BEGIN {printf "%.2f", x}'; }
mb() { awk -v x="$1" -v d="$2" 'BEGIN {printf "%.1f", x / d}'; } # mb VALUE DIVISOR (1e6 bytes, 1e3 kB)
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a / b}'; }

report() {
    echo "Machine: $(nproc) cores, $(sed -n 's/^PRETTY_NAME="\(.*\)"$/\1/p' /etc/os-release), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); walvault at $COMMIT; $START-$END UTC."
    echo "Database: pgbench -i -s $SCALE, pg_database_size = $(mb "$DB_BYTES" 1e6) MB ($TABLES); pg_dump's uncompressed custom-format output (walvault's raw bytes) $(mb "${RAWM[wv-file]}" 1e6) MB."
    echo "$RUNS timed rounds (order rotating), after one untimed run of each; medians of wall time, CPU and RSS; load average $LOAD_BEFORE when timing started, 1-minute load at the start-end of each round: ${LOADS[*]}."
    echo
    echo "| variant | median s | min-max s | vs pg_dump -Fc | CPU s (tree) | server CPU s | storage CPU s | peak RSS MB, largest process | peak RSS MB, tree (sampled) | stored MB | stored vs pg_dump -Fc |"
    echo "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    local v sto stored
    for v in "${VARIANTS[@]}"; do
        sto="-"
        [[ $v == wv-s3 ]] && sto=$(fmt2 "${STO[$v]}")
        stored="$(mb "${STORED[$v]}" 1e6) | $(ratio "${STORED[$v]}" "${STORED[pgfc]}")x"
        [[ $v == counts ]] && stored="- | -"
        echo "| ${LABEL[$v]} | $(fmt2 "${T[$v]}") | $(fmt2 "${TMIN[$v]}")-$(fmt2 "${TMAX[$v]}") | $(ratio "${T[$v]}" "${T[pgfc]}")x |" \
            "$(fmt2 "${CPU[$v]}") | $(fmt2 "${SRV[$v]}") | $sto | $(mb "${RSS[$v]}" 1e3) | $(mb "${TREE[$v]}" 1e3) |" \
            "$stored |"
    done
    echo
    local verdict
    verdict=$(awk -v r="$(ratio "${T[wv-file]}" "${T[pgfc]}")" 'BEGIN {print (r <= 1.0) ? "met" : "**missed**"}')
    echo "Target: walvault dump (zstd:3 + key) no slower than pg_dump -Fc: $(ratio "${T[wv-file]}" "${T[pgfc]}")x to file:// ($verdict)$(
        [[ -n ${T[wv-s3]:-} ]] && echo "; $(ratio "${T[wv-s3]}" "${T[pgfc]}")x to S3 on loopback")."
    echo "Peak RSS of walvault's own process (largest over the timed runs): $(mb "${WVRSS[wv-file]}" 1e3) MB to file://$(
        [[ -n ${T[wv-s3]:-} ]] && echo ", $(mb "${WVRSS[wv-s3]}" 1e3) MB to S3")."
}
report | tee "${RESULTS:-/dev/null}"
