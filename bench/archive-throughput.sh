#!/usr/bin/env bash
# Archive and recovery throughput benchmark: a backlog of real pgbench WAL segments drained by
# PostgreSQL's own archiver through walvault's wal-push, pgBackRest's archive-push (sync, and
# async with process-max=2) and wal-rus's wal-push; then a recovery replaying those segments
# through walvault's wal-fetch (prefetch 16 and 0), pgBackRest's async archive-get and wal-rus's
# wal-fetch. All tools talk to the same S3-compatible server (s3s-fs) through the same TLS
# terminator (socat, self-signed certificate) and, for RTT > 0, through bench/latency_proxy.rs,
# which holds every chunk for half the RTT in each direction. zstd level 3 for every tool.
#
# Run as root on Debian 12 from anywhere inside the walvault checkout:
#
#     bash bench/archive-throughput.sh
#
# It installs what it is missing (postgresql-15, pgbackrest, socat, openssl, jq, time from apt;
# wal-rus and s3s-fs from crates.io), builds walvault's release binaries and latency-proxy, makes
# the WAL once in a throw-away PostgreSQL 15 cluster (unix socket only, run as postgres), and
# prints markdown tables. Everything it starts is stopped by pid on exit; servers listen on
# 127.0.0.1 only.
#
# Settings (environment):
#   SEGMENTS=400     at least this many 16 MiB segments in the backlog (the exact count is reported)
#   RUNS=3           timed runs per tool, variant and RTT (3 or more for a table of medians; 1 for
#                    a quick check of the set-up); the order rotates from run to run
#   RTTS="20 0"      round-trip times in ms to add (0: straight to the TLS terminator)
#   SCALE=20         pgbench scale of the database the WAL is made on
#   PGBIN=/usr/lib/postgresql/15/bin
#   LOCK=/tmp/walvault-bench.lock   every timed run holds this lock (flock), nothing else does
#   QUIET_LOAD=N     before each timed run, wait (up to QUIET_WAIT=300 s) for the load average < N
#   RESULTS=FILE     also write the markdown results there
#   DRAINS="wv pgbr-sync pgbr-async walrus"           the drains to time (a subset for a quick look)
#   RECOVERIES="wv-pf16 wv-pf0 pgbr-async walrus local-cp"  the recoveries to time (empty: none);
#                    a recovery of a tool reads the repository its drain left, so drain it too;
#                    local-ln (a hard link per segment: replay with no copy at all) is a strict
#                    floor that shows how much of a recovery is writing the segments to disk
#   PROFILE=1        after the timed drains, one more drain by walvault and by pgBackRest async at
#                    the first RTT under a system-wide `perf record` (cpu-clock), with reports by
#                    process and by symbol in the work directory's profile/ (use with KEEP=1)
#   BASELINE=REV     also drain with the wal-push of git revision REV (built in a worktree), as
#                    the variant wv-base, side by side with the checkout's in the same rounds; its
#                    wal-fetch is the recovery variant wv-pf16-base (name it in RECOVERIES)
#   KEEP=1           keep the temporary directory (logs, raw results)
#   CARGO_TARGET_DIR is honoured for the build.
set -euo pipefail

SEGMENTS=${SEGMENTS:-400}
RUNS=${RUNS:-3}
RTTS=${RTTS:-20 0}
SCALE=${SCALE:-20}
PGBIN=${PGBIN:-/usr/lib/postgresql/15/bin}
KEEP=${KEEP:-0}
PROFILE=${PROFILE:-0}

BENCH=archive-throughput.sh
# shellcheck source=bench/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
((RUNS >= 1)) || die "RUNS must be at least 1"

# ---------------------------------------------------------------------------------------------
# Tools
# ---------------------------------------------------------------------------------------------
[[ -x $PGBIN/initdb ]] || need_apt /nonexistent postgresql-15
need_apt pgbackrest pgbackrest
need_apt socat socat
need_apt openssl openssl
need_apt jq jq
need_apt curl curl
need_apt /usr/bin/time time
need_apt flock util-linux
need_apt python3 python3
((PROFILE == 1)) && need_apt perf linux-perf
export PATH=$HOME/.cargo/bin:$PATH
command -v cargo >/dev/null || die "cargo is not installed"
need_crate walrus wal-rus "$WAL_RUS_VERSION"
need_crate s3s-fs s3s-fs "$S3S_FS_VERSION" --features binary

log "building walvault (release) and latency-proxy"
(cd "$ROOT" && cargo build --release --features test-tools --bin walvault --bin wal-push --bin wal-fetch --bin latency-proxy --example floor >&2)
COMMIT=$(built_commit)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}
build_baseline wal-push wal-fetch

# ---------------------------------------------------------------------------------------------
# Work directory, owned by postgres: every tool runs as postgres, as archive_command does.
# ---------------------------------------------------------------------------------------------
WORK=$(mktemp -d /tmp/walvault-tput.XXXXXX)
SOCK=$WORK/sock
BIN=$WORK/bin
GEN=$WORK/gen   # the cluster after making the WAL: the backlog is its pg_wal
BASE=$WORK/base # the cluster before making the WAL, pg_wal emptied: the base of each recovery
RUN=$WORK/run   # the cluster of the run under way
mkdir -p "$WORK"/{bin,sock,home,s3/bench,tls,spool,logs,rss,runs}
cp "$TARGET/release/walvault" "$TARGET/release/wal-push" "$TARGET/release/wal-fetch" \
    "$TARGET/release/latency-proxy" "$TARGET/release/examples/floor" "$(command -v walrus)" "$BIN/"
[[ -z ${BASELINE:-} ]] || cp "$BASE_TREE/target/release/wal-push" "$BIN/wal-push-base"
[[ -z ${BASELINE:-} ]] || cp "$BASE_TREE/target/release/wal-fetch" "$BIN/wal-fetch-base"
chmod 0755 "$BIN"/*
chown -R postgres:postgres "$WORK"
chmod 0755 "$WORK"

as_pg() { runuser -u postgres -- env HOME="$WORK/home" PATH="$BIN:$PGBIN:/usr/bin:/bin" "$@"; }
psql_pg() { as_pg psql -h "$SOCK" -p 5432 -d postgres -X -q -t -A -v ON_ERROR_STOP=1 "$@"; }

PIDS=()
cleanup() {
    local pid d
    for d in "$GEN" "$RUN"; do
        [[ -f $d/postmaster.pid ]] || continue
        pid=$(head -1 "$d/postmaster.pid")
        if [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null; then
            kill -INT "$pid" 2>/dev/null || true # fast shutdown
            for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        fi
    done
    # Detached helpers of the tools (walvault's prefetcher, pgBackRest's async processes, wal-rus'
    # prefetch) run as postgres with their working directory in $WORK.
    for pid in $(pgrep -u postgres -f "$WORK" || true); do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    if [[ $KEEP == 1 ]]; then
        log "kept $WORK"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT

free_port() { # a free TCP port on 127.0.0.1
    local p
    for p in $(shuf -i 20000-60000 -n 50); do
        ss -Htln "sport = :$p" | grep -q . || { echo "$p"; return; }
    done
    die "no free port"
}

# ---------------------------------------------------------------------------------------------
# Object storage: s3s-fs <- socat (TLS) <- latency-proxy (per RTT)
# ---------------------------------------------------------------------------------------------
log "TLS: a throw-away CA and a certificate for 127.0.0.1"
(
    cd "$WORK/tls"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=walvault-bench-ca \
        -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign,cRLSign 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -keyout server.key -out server.csr -subj /CN=127.0.0.1 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n' >ext
    openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out server.pem -days 2 \
        -extfile ext 2>/dev/null
)
chown -R postgres:postgres "$WORK/tls"
S3_KEY=walvault-bench
S3_SECRET=walvault-bench-secret-0123456789
S3PORT=$(free_port)
s3s-fs --host 127.0.0.1 --port "$S3PORT" --access-key "$S3_KEY" --secret-key "$S3_SECRET" "$WORK/s3" \
    >"$WORK/logs/s3s-fs.log" 2>&1 &
PIDS+=($!)
TLSPORT=$(free_port)
socat "OPENSSL-LISTEN:$TLSPORT,bind=127.0.0.1,fork,reuseaddr,cert=$WORK/tls/server.pem,key=$WORK/tls/server.key,verify=0" \
    "TCP:127.0.0.1:$S3PORT" 2>"$WORK/logs/socat.log" &
PIDS+=($!)
declare -A PORT # RTT -> the port clients use
for rtt in $RTTS; do
    if ((rtt == 0)); then
        PORT[0]=$TLSPORT
        continue
    fi
    "$BIN/latency-proxy" --listen 127.0.0.1:0 --upstream "127.0.0.1:$TLSPORT" --rtt-ms "$rtt" \
        >"$WORK/logs/proxy-$rtt.out" 2>"$WORK/logs/proxy-$rtt.err" &
    PIDS+=($!)
    for _ in $(seq 100); do grep -q '^listening on' "$WORK/logs/proxy-$rtt.out" && break; sleep 0.1; done
    PORT[$rtt]=$(sed -n 's/^listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$WORK/logs/proxy-$rtt.out")
    [[ -n ${PORT[$rtt]} ]] || die "latency-proxy did not start: $(cat "$WORK/logs/proxy-$rtt.err")"
done
for _ in $(seq 100); do ss -Htln "sport = :$S3PORT" | grep -q . && ss -Htln "sport = :$TLSPORT" | grep -q . && break; sleep 0.1; done
curl -sk -o /dev/null "https://127.0.0.1:$TLSPORT/" || die "the TLS path to s3s-fs does not answer"

# ---------------------------------------------------------------------------------------------
# Tool configurations. Every one: the same bucket, the same endpoint per RTT, zstd level 3.
# PREFIX names one repository: a fresh one for every drain run.
# ---------------------------------------------------------------------------------------------
as_pg walvault keygen "$WORK/key" >/dev/null
wv_conf() { # wv_conf PREFIX RTT -> path of a walvault config file
    local f=$WORK/runs/wv-$1.toml
    cat >"$f" <<EOF
repo = "s3://bench/$1"
compression = "zstd:3"
encryption_key_file = "$WORK/key"

[storage]
aws_access_key_id = "$S3_KEY"
aws_secret_access_key = "$S3_SECRET"
aws_region = "us-east-1"
aws_endpoint = "https://127.0.0.1:${PORT[$2]}"
allow_invalid_certificates = "true"
EOF
    chown postgres:postgres "$f"
    echo "$f"
}
cat >"$WORK/pgbackrest.conf" <<EOF
[global]
repo1-type=s3
repo1-s3-bucket=bench
repo1-s3-endpoint=127.0.0.1
repo1-s3-region=us-east-1
repo1-s3-key=$S3_KEY
repo1-s3-key-secret=$S3_SECRET
repo1-s3-uri-style=path
repo1-storage-verify-tls=n
compress-type=zst
compress-level=3
lock-path=$WORK/spool/pgbr-lock
log-path=$WORK/logs
log-level-console=warn
log-level-stderr=warn
log-level-file=off

[bench]
pg1-socket-path=$SOCK
pg1-port=5432
pg1-user=postgres
EOF
chown postgres:postgres "$WORK/pgbackrest.conf"
as_pg mkdir -p "$WORK/spool/pgbr-lock"
pgbr() { # pgbr PREFIX RTT PGDATA: the pgBackRest command words for that repository
    echo "pgbackrest --config=$WORK/pgbackrest.conf --stanza=bench --repo1-path=/$1 --repo1-storage-port=${PORT[$2]} --pg1-path=$3"
}
walrus_env() { # walrus_env PREFIX RTT -> the environment words wal-rus runs with
    echo "SSL_CERT_FILE=$WORK/tls/ca.pem WALG_S3_PREFIX=s3://bench/$1 AWS_ENDPOINT=https://127.0.0.1:${PORT[$2]}" \
        "AWS_S3_FORCE_PATH_STYLE=true AWS_REGION=us-east-1 AWS_ACCESS_KEY_ID=$S3_KEY" \
        "AWS_SECRET_ACCESS_KEY=$S3_SECRET WALG_COMPRESSION_METHOD=zstd WALG_COMPRESSION_LEVEL=3"
}

# ---------------------------------------------------------------------------------------------
# The WAL. A cluster is loaded (its WAL "archived" to /bin/true), stopped and copied as the base;
# then, with archive_command empty (PostgreSQL keeps every finished segment as .ready, as during
# a storage outage), pgbench runs until SEGMENTS segments are ready. wal_recycle=off: segments are
# never renamed and rewritten, so the runs can hard-link them.
# ---------------------------------------------------------------------------------------------
log "making the WAL: initdb, pgbench -i -s $SCALE"
as_pg initdb -D "$GEN" -U postgres -A trust --no-sync >/dev/null
cat >>"$GEN/postgresql.conf" <<EOF
listen_addresses = ''
unix_socket_directories = '$SOCK'
port = 5432
wal_level = replica
archive_mode = on
wal_recycle = off
max_wal_size = 64GB
checkpoint_timeout = 30s
autovacuum = off
include_if_exists = 'bench_mode.conf'
EOF
pg_start() { # pg_start DATADIR [ARCHIVE_COMMAND]
    printf "archive_command = '%s'\n" "${2:-}" >"$1/bench_mode.conf"
    chown postgres:postgres "$1/bench_mode.conf"
    as_pg pg_ctl -D "$1" -w -t 300 -l "$WORK/logs/postgres-$(basename "$1").log" start >/dev/null
}
pg_stop() { as_pg pg_ctl -D "$1" -m fast -w -t 300 stop >/dev/null; }
pg_start "$GEN" /bin/true
as_pg pgbench -h "$SOCK" -p 5432 -i -s "$SCALE" -q postgres >/dev/null 2>&1
psql_pg -c "checkpoint" -c "select pg_switch_wal()" >/dev/null
sleep 2 # the archiver marks the last finished segment done
pg_stop "$GEN"
cp -a "$GEN" "$BASE"
find "$BASE/pg_wal" -maxdepth 1 -type f -delete
find "$BASE/pg_wal/archive_status" -type f -delete

log "making the WAL: pgbench until $SEGMENTS segments are ready"
pg_start "$GEN" ""
ready() { find "$1/pg_wal/archive_status" -name '*.ready' | wc -l; }
while (($(ready "$GEN") < SEGMENTS)); do
    as_pg pgbench -h "$SOCK" -p 5432 -n -c 4 -j 2 -T 10 postgres >/dev/null 2>&1
done
TARGET_LSN=$(psql_pg -c "select pg_current_wal_lsn()")
psql_pg -c "select pg_switch_wal()" >/dev/null
pg_stop "$GEN"
N=$(ready "$GEN")
find "$GEN/pg_wal/archive_status" -name '*.ready' -printf '%f\n' | sed 's/\.ready$//' | sort >"$WORK/segments"
FIRST=$(head -1 "$WORK/segments")
LAST=$(tail -1 "$WORK/segments")
WAL_BYTES=$((N * 16 * 1024 * 1024))
log "backlog: $N segments, $FIRST to $LAST; recovery target LSN $TARGET_LSN"

# The floor of a drain's CPU (examples/floor.rs): the work no archiver can avoid for a segment,
# one SHA-256 and one zstd level 3 pass, in one plain process per segment (start-up included),
# over every segment of the backlog, read from the page cache as the drains read them.
log "the floor: examples/floor.rs zstd:3 over the $N segments"
cat "$GEN"/pg_wal/[0-9A-F]* >/dev/null
bench_lock
: >"$WORK/floor.times"
while read -r seg; do
    /usr/bin/time -a -o "$WORK/floor.times" -f '%U %S' "$BIN/floor" zstd:3 "$GEN/pg_wal/$seg" >>"$WORK/floor.out"
done <"$WORK/segments"
bench_unlock
FLOOR_MS=$(awk -v n="$N" '{t += $1 + $2} END {printf "%.1f", t * 1000 / n}' "$WORK/floor.times")
FLOOR_INNER_MS=$(awk -v n="$N" '{t += $6} END {printf "%.1f", t / n}' "$WORK/floor.out")
log "the floor: $FLOOR_MS CPU-ms per segment ($FLOOR_INNER_MS ms of it inside the process)"

# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------

# The peak RSS (kB) of any one process of the tools, and of all of them together, sampled every
# 0.1 s until the file STOP exists; catches the long-lived helpers (daemons, async processes).
# Short calls are measured exactly by the /usr/bin/time wrapper around each command.
sample_rss() { # sample_rss STOP OUT
    local one=0 all=0 o a
    while [[ ! -e $1 ]]; do
        read -r o a < <(ps -u postgres -o rss=,comm= |
            awk '$2 ~ /^(wal-push|wal-push-base|wal-fetch|wal-fetch-base|walvault|pgbackrest|walrus)$/ {s += $1; if ($1 > m) m = $1}
                 END {print m + 0, s + 0}')
        ((o > one)) && one=$o
        ((a > all)) && all=$a
        sleep 0.1
    done
    echo "$one $all" >"$2"
}
# The CPU account of a run, sampled from /proc every 0.1 s until the file STOP exists, in seconds:
#   commands: what PostgreSQL's process running the commands (the archiver in a drain, the startup
#             process in a recovery) has reaped from its children: every archive_command /
#             restore_command call, with its `sh -c` and /usr/bin/time wrapper (their CPU counts
#             when the call ends, so it is exact at the end of a drain);
#   helpers:  the tool's long-lived processes that are not those calls (walvault's pusher and
#             prefetcher, pgBackRest's async processes, wal-rus' prefetch): the last value seen of
#             each (up to 0.1 s of a helper's work at its very end can be missed);
#   pg:       the PostgreSQL process's own CPU (the archiver's bookkeeping; the startup process's
#             replay).
# PGPAT: a pattern for that process's command line (`postgres: archiver`, `postgres: startup`).
sample_cpu() { # sample_cpu STOP OUT PGPAT (one python process: forks every 0.1 s would cost more than they measure)
    python3 - "$1" "$2" "$3" <<'PY'
import os, pwd, sys, time
stop, out, pat = sys.argv[1:4]
uid = pwd.getpwnam("postgres").pw_uid
tools = {"wal-push", "wal-push-base", "wal-fetch", "wal-fetch-base", "walvault", "pgbackrest", "walrus"}
tick = os.sysconf("SC_CLK_TCK")
pg = None; first = last = None; helper = {}; base = None
def stat(pid):
    with open(f"/proc/{pid}/stat") as f:
        s = f.read()
    comm = s[s.index("(") + 1:s.rindex(")")]
    f = s[s.rindex(")") + 2:].split()
    return comm, int(f[1]), int(f[11]) + int(f[12]), int(f[13]) + int(f[14])
while not os.path.exists(stop):
    procs = {}
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            if os.stat(f"/proc/{d}").st_uid != uid:
                continue
            procs[int(d)] = stat(d)
        except (OSError, ValueError):
            continue
    if pg not in procs:
        pg = None
        for pid in procs:
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    if f.read().startswith(pat.encode()):
                        pg = pid
                        break
            except OSError:
                pass
    if pg in procs:
        own, children = procs[pg][2], procs[pg][3]
        if first is None:
            first = (own, children)
        last = (own, children)
    seen = {}
    for pid, (comm, ppid, t, _) in procs.items():
        parent = procs.get(ppid, ("",))[0]
        if comm in tools and parent not in ("time", "sh"):
            seen[pid] = t
            helper[pid] = max(helper.get(pid, 0), t)
    # A helper already there at the first sample is an earlier run's, idling out: only what it
    # does from now on counts (the drain's own helpers start after the first sample).
    if base is None:
        base = seen
    time.sleep(0.1)
helper = {p: t - (base or {}).get(p, 0) for p, t in helper.items()}
first = first or (0, 0); last = last or (0, 0)
with open(out, "w") as f:
    f.write("%.2f\t%.2f\t%.2f\n" % ((last[1] - first[1]) / tick, sum(helper.values()) / tick, (last[0] - first[0]) / tick))
PY
}
now() { date +%s.%N; }
# CPU seconds: of the whole machine (busy time in /proc/stat), and of the storage side (s3s-fs,
# socat and its reaped children, the latency proxies), which every tool pays alike. On a cloud
# the storage side runs elsewhere; here it shares the cores with the tool and PostgreSQL.
cpu_all() { awk '$1 == "cpu" {print ($2 + $3 + $4 + $7 + $8 + $9) / 100; exit}' /proc/stat; }
cpu_storage() {
    local pid t=0
    for pid in "${PIDS[@]}"; do
        [[ -r /proc/$pid/stat ]] || continue
        t=$((t + $(sed 's/.*) //' "/proc/$pid/stat" | awk '{print $12 + $13 + $14 + $15}')))
    done
    awk -v t="$t" 'BEGIN {print t / 100}'
}
cpu_mark() { echo "$(cpu_all) $(cpu_storage)"; }
cpu_since() { # cpu_since "MARK" -> "all storage" CPU seconds since the mark
    local a0 s0 a1 s1
    read -r a0 s0 <<<"$1"
    read -r a1 s1 <<<"$(cpu_mark)"
    awk -v a="$a1" -v b="$a0" -v c="$s1" -v d="$s0" 'BEGIN {printf "%.1f\t%.1f", a - b, c - d}'
}
RAW=$WORK/raw.tsv # kind variant rtt run seconds peak_one_kb peak_all_kb failed stored cpu_all cpu_storage cpu_commands cpu_helpers cpu_pg
: >"$RAW"

# Every archive_command / restore_command runs under /usr/bin/time, which appends the call's
# peak RSS to a file.
timed_cmd() { echo "/usr/bin/time -a -o $1 -f %%M $2"; } # %% : PostgreSQL's escape for %

prepare_run() { # a fresh copy of the generated cluster; the ready segments hard-linked
    rm -rf "$RUN"
    mkdir "$RUN"
    (cd "$GEN" && find . -mindepth 1 -maxdepth 1 ! -name pg_wal -exec cp -a {} "$RUN/" \;)
    mkdir -p "$RUN/pg_wal/archive_status"
    local f
    for f in "$GEN"/pg_wal/*; do
        [[ -f $f ]] || continue
        if [[ -e $GEN/pg_wal/archive_status/$(basename "$f").ready ]]; then
            ln "$f" "$RUN/pg_wal/"
        else
            cp -a "$f" "$RUN/pg_wal/"
        fi
    done
    cp -a "$GEN"/pg_wal/archive_status/* "$RUN/pg_wal/archive_status/"
    chown -R postgres:postgres "$RUN"
    chmod 0700 "$RUN"
}

read -r -a DRAINS <<<"${DRAINS-wv pgbr-sync pgbr-async walrus}"
[[ -z ${BASELINE:-} || " ${DRAINS[*]} " == *" wv-base "* ]] || DRAINS+=(wv-base)
declare -A KEEP_PREFIX # variant.rtt -> the repository the last drain left (recovery reads it)
drain_cmd() { # drain_cmd VARIANT PREFIX RTT
    case $1 in
    wv) echo "wal-push --config $(wv_conf "$2" "$3") %p" ;;
    wv-base) echo "wal-push-base --config $(wv_conf "$2" "$3") %p" ;;
    pgbr-sync) echo "$(pgbr "$2" "$3" "$RUN") archive-push %p" ;;
    pgbr-async) echo "$(pgbr "$2" "$3" "$RUN") --archive-async --process-max=2 --spool-path=$WORK/spool/pgbr archive-push %p" ;;
    walrus) echo "env $(walrus_env "$2" "$3") walrus wal-push %p" ;;
    esac
}
drain() { # drain VARIANT RTT RUN [profile]: with "profile", under perf and not in the tables
    local v=$1 rtt=$2 r=$3 profile=${4:-} perf_pid="" prefix=$1-$2-$3 rss=$WORK/rss/drain.$1.$2.$3 t0 t1 left cmd c0 cpu
    prepare_run
    rm -rf "$WORK/spool/pgbr"
    as_pg mkdir -p "$WORK/spool/pgbr"
    pg_start "$RUN" ""
    if [[ $v == pgbr-* ]]; then
        # shellcheck disable=SC2046 # a list of words by design
        as_pg $(pgbr "$prefix" "$rtt" "$RUN") stanza-create >/dev/null 2>"$WORK/logs/stanza.err" ||
            die "pgBackRest stanza-create failed: $(cat "$WORK/logs/stanza.err")"
    fi
    cmd=$(timed_cmd "$rss.calls" "$(drain_cmd "$v" "$prefix" "$rtt")")
    printf "archive_command = '%s'\n" "$cmd" >"$RUN/bench_mode.conf"
    bench_lock
    rm -f "$rss.stop"
    sample_rss "$rss.stop" "$rss.sampled" &
    spid=$!
    sample_cpu "$rss.stop" "$rss.cpu" "postgres: archiver" &
    cpid=$!
    if [[ -n $profile ]]; then
        mkdir -p "$WORK/profile"
        perf record -a -e cpu-clock -F 499 -o "$WORK/profile/drain-$v.data" >/dev/null 2>&1 &
        perf_pid=$!
        sleep 1
    fi
    c0=$(cpu_mark)
    t0=$(now)
    psql_pg -c "select pg_reload_conf()" >/dev/null
    while true; do
        left=$(ready "$RUN")
        ((left == 0)) && break
        if (($(awk -v a="$t0" -v b="$(now)" 'BEGIN {print int(b - a)}') > 3600)); then
            die "$v at $rtt ms: $left segments still not archived after an hour"
        fi
        sleep 0.05
    done
    t1=$(now)
    cpu=$(cpu_since "$c0")
    if [[ -n $perf_pid ]]; then
        kill -INT "$perf_pid"
        wait "$perf_pid" || true
    fi
    touch "$rss.stop"
    wait "$spid" "$cpid"
    bench_unlock
    local failed
    failed=$(psql_pg -c "select failed_count from pg_stat_archiver")
    pg_stop "$RUN"
    # Every segment is in the repository: count the objects under its prefix.
    local stored
    stored=$(find "$WORK/s3/bench/$prefix" -type f | grep -c -E '/[0-9A-F]{24}[^/]*$' || true)
    ((stored >= N)) || die "$v at $rtt ms: $stored objects for $N segments in s3://bench/$prefix"
    local prev=${KEEP_PREFIX[$v.$rtt]:-}
    [[ -n $prev ]] && rm -rf "${WORK:?}/s3/bench/$prev"
    KEEP_PREFIX[$v.$rtt]=$prefix
    printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "${profile:+profile-}drain" "$v" "$rtt" "$r" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')" \
        "$(sort -n "$rss.calls" | tail -1) $(cat "$rss.sampled")" "$failed" "$(du -sb "$WORK/s3/bench/$prefix" | cut -f1)" "$cpu" "$(cat "$rss.cpu")" |
        awk -F'\t' -v OFS='\t' '{split($6, m, " "); one = (m[1] > m[2]) ? m[1] : m[2]; $6 = one "\t" m[3]; print}' >>"$RAW"
    log "drain $v at $rtt ms, run $r: $(tail -1 "$RAW" | cut -f5) s ($failed failed calls)"
}

read -r -a RECOVERIES <<<"${RECOVERIES-wv-pf16 wv-pf0 pgbr-async walrus local-cp}"
recovery_cmd() { # recovery_cmd VARIANT RTT
    local wvp=${KEEP_PREFIX[wv.$2]:-} pbp=${KEEP_PREFIX[pgbr-async.$2]:-} wrp=${KEEP_PREFIX[walrus.$2]:-}
    case $1 in
    wv-pf16) echo "wal-fetch --config $(wv_conf "$wvp" "$2") --prefetch 16 %f %p" ;;
    wv-pf0) echo "wal-fetch --config $(wv_conf "$wvp" "$2") --prefetch 0 %f %p" ;;
    wv-pf16-base) echo "wal-fetch-base --config $(wv_conf "$wvp" "$2") --prefetch 16 %f %p" ;;
    pgbr-async) echo "$(pgbr "$pbp" "$2" "$RUN") --archive-async --process-max=2 --spool-path=$WORK/spool/pgbr archive-get %f \"%p\"" ;;
    walrus) echo "env $(walrus_env "$wrp" "$2") walrus wal-fetch %f %p" ;;
    local-cp) echo "cp $GEN/pg_wal/%f %p" ;;
    # The strict replay floor: a hard link (same file system), so not even a copy is made.
    local-ln) echo "ln $GEN/pg_wal/%f %p" ;;
    esac
}
recover() { # recover VARIANT RTT RUN
    local v=$1 rtt=$2 r=$3 rss=$WORK/rss/recovery.$1.$2.$3 t0 t1 pid log=$WORK/logs/recovery.$1.$2.$3.log c0 cpu
    rm -rf "$RUN" "$WORK/spool/pgbr"
    cp -a "$BASE" "$RUN"
    as_pg mkdir -p "$WORK/spool/pgbr"
    touch "$RUN/recovery.signal"
    {
        printf "restore_command = '%s'\n" "$(timed_cmd "$rss.calls" "$(recovery_cmd "$v" "$rtt")")"
        echo "recovery_target_lsn = '$TARGET_LSN'"
        echo "recovery_target_action = 'shutdown'"
        echo "archive_mode = off"
    } >"$RUN/bench_mode.conf"
    chown -R postgres:postgres "$RUN"
    bench_lock
    rm -f "$rss.stop"
    sample_rss "$rss.stop" "$rss.sampled" &
    spid=$!
    sample_cpu "$rss.stop" "$rss.cpu" "postgres: startup" &
    cpid=$!
    c0=$(cpu_mark)
    t0=$(now)
    as_pg pg_ctl -D "$RUN" -l "$log" start >/dev/null
    for _ in $(seq 100); do [[ -f $RUN/postmaster.pid ]] && break; sleep 0.01; done
    pid=$(head -1 "$RUN/postmaster.pid")
    while kill -0 "$pid" 2>/dev/null; do sleep 0.05; done
    t1=$(now)
    cpu=$(cpu_since "$c0")
    touch "$rss.stop"
    wait "$spid" "$cpid"
    bench_unlock
    grep -q "recovery stopping after WAL location (LSN) \"$TARGET_LSN\"" "$log" ||
        die "recovery with $v at $rtt ms did not reach $TARGET_LSN: $(tail -5 "$log")"
    # The helpers of the tools go once recovery is over; none may stay behind for the next run.
    pkill -u postgres -f "$WORK" 2>/dev/null || true
    pkill -u postgres -x walrus 2>/dev/null || true
    printf 'recovery\t%s\t%s\t%s\t%s\t%s\t0\t0\t%s\t%s\n' "$v" "$rtt" "$r" \
        "$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.3f", b - a}')" \
        "$(sort -n "$rss.calls" | tail -1) $(cat "$rss.sampled")" "$cpu" "$(cat "$rss.cpu")" |
        awk -F'\t' -v OFS='\t' '{split($6, m, " "); one = (m[1] > m[2]) ? m[1] : m[2]; $6 = one "\t" m[3]; print}' >>"$RAW"
    log "recovery $v at $rtt ms, run $r: $(tail -1 "$RAW" | cut -f5) s"
}

LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
for r in $(seq "$RUNS"); do
    for rtt in $RTTS; do
        n=${#DRAINS[@]}
        for ((i = 0; i < n; i++)); do drain "${DRAINS[((i + r) % n)]}" "$rtt" "$r"; done
    done
done
if ((PROFILE == 1)); then
    for v in wv pgbr-async; do
        log "profiling a drain by $v at ${RTTS%% *} ms, system-wide"
        drain "$v" "${RTTS%% *}" p profile
        perf report -i "$WORK/profile/drain-$v.data" --stdio --sort comm,dso --percent-limit 0.5 \
            >"$WORK/profile/drain-$v.comm.txt" 2>/dev/null
        perf report -i "$WORK/profile/drain-$v.data" --stdio --sort comm,dso,sym --percent-limit 0.3 \
            >"$WORK/profile/drain-$v.sym.txt" 2>/dev/null
    done
    log "profiles in $WORK/profile (kept with KEEP=1)"
fi
for r in $(seq "$RUNS"); do
    for rtt in $RTTS; do
        n=${#RECOVERIES[@]}
        for ((i = 0; i < n; i++)); do
            v=${RECOVERIES[((i + r) % n)]}
            # The local floors do not depend on the RTT: timed once per round.
            [[ $v == local-* && $rtt != "${RTTS%% *}" ]] && continue
            recover "$v" "$rtt" "$r"
        done
    done
done
LOAD_END=$(cut -d' ' -f1-3 /proc/loadavg)

# ---------------------------------------------------------------------------------------------
# Results
# ---------------------------------------------------------------------------------------------
stats() { # stats KIND VARIANT RTT COLUMN -> "median min max"
    awk -F'\t' -v k="$1" -v v="$2" -v t="$3" -v c="$4" '$1 == k && $2 == v && $3 == t {print $c}' "$RAW" |
        sort -g | awk '{a[NR] = $1} END {if (NR == 0) {print "nan nan nan"; exit}
                         m = (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2; print m, a[1], a[NR]}'
}
f1() { awk -v x="$1" 'BEGIN {printf "%.1f", x}'; }
f2() { awk -v x="$1" 'BEGIN {printf "%.2f", x}'; }
mb() { awk -v k="$1" 'BEGIN {printf "%.1f", k / 1024}'; }
declare -A LABEL=(
    [wv]="walvault wal-push (upload_concurrency 8, zstd:3 + AES-256-GCM key)"
    [wv-base]="the same, walvault at ${BASE_REV:-?} (baseline)"
    [pgbr-sync]="pgBackRest $(pgbackrest version | awk '{print $2}') archive-push, sync"
    [pgbr-async]="pgBackRest archive-push, async, process-max=2"
    [walrus]="wal-rus $(walrus --version 2>/dev/null | awk '{print $NF}') wal-push (its defaults, zstd level 3)"
    [wv-pf16]="walvault wal-fetch, prefetch 16"
    [wv-pf0]="walvault wal-fetch, prefetch 0"
    [wv-pf16-base]="the same with prefetch 16, walvault at ${BASE_REV:-?} (baseline)"
    [pgbr-async-get]="pgBackRest archive-get, async, process-max=2 (default queue)"
    [walrus-get]="wal-rus wal-fetch (its default prefetch)"
    [local-cp]="floor: cp from a local directory (no storage, replay only)"
    [local-ln]="strict floor: a hard link to a local file (no storage, no copy, replay only)"
)
label() { # label KIND VARIANT
    if [[ $1 == recovery && ($2 == pgbr-async || $2 == walrus) ]]; then echo "${LABEL[$2-get]}"; else echo "${LABEL[$2]}"; fi
}
best_competitor() { # best_competitor KIND RTT -> median seconds of the fastest competitor
    local kind=$1 rtt=$2 v best="" m
    local list=(pgbr-sync pgbr-async walrus)
    [[ $kind == recovery ]] && list=(pgbr-async walrus)
    for v in "${list[@]}"; do
        read -r m _ _ <<<"$(stats "$kind" "$v" "$rtt" 5)"
        [[ $m == nan ]] && continue # not timed in this run
        if [[ -z $best ]] || awk -v a="$m" -v b="$best" 'BEGIN {exit !(a < b)}'; then best=$m; fi
    done
    echo "$best"
}
report() {
    echo "Machine: $(nproc) cores, $(free -g | awk '/^Mem:/ {print $2}') GiB, $(sed -n 's/^PRETTY_NAME="\(.*\)"$/\1/p' /etc/os-release), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'); $(date -u '+%Y-%m-%d %H:%M UTC')."
    echo "PostgreSQL $("$PGBIN/postgres" --version | awk '{print $3}'), walvault $COMMIT; s3s-fs behind socat (TLS) and latency-proxy; $RUNS runs per row, medians (min-max)."
    echo "Backlog: $N segments of pgbench WAL (scale $SCALE, checkpoint_timeout 30 s), $FIRST to $LAST; load average $LOAD_START at the start, $LOAD_END at the end."
    echo "CPU: busy seconds of all $(nproc) cores during the run (/proc/stat), and of them the storage side's (s3s-fs, socat, latency-proxy), which every tool pays alike; the rest is the tool, PostgreSQL and the benchmark's own sampling."
    echo "Peak RSS: the largest single process of the tool (every archive/restore command under /usr/bin/time, plus 0.1 s sampling of its long-lived helpers); all = largest sum of the tool's processes sampled at one moment."
    for kind in drain recovery; do
        echo
        if [[ $kind == drain ]]; then
            echo "Backlog drain (PostgreSQL's archiver; until no .ready file is left):"
        else
            echo "Recovery of the $N segments (from a cold copy of the cluster before them, to recovery_target_lsn, action shutdown):"
        fi
        echo
        echo "| RTT | tool | median s | min-max s | segments/s | MB/s of WAL | vs fastest competitor | peak RSS MB (one / all) | stored MB | CPU s: machine / storage side |"
        echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        local list=("${DRAINS[@]}")
        [[ $kind == recovery ]] && list=("${RECOVERIES[@]}")
        for rtt in $RTTS; do
            local best
            best=$(best_competitor "$kind" "$rtt")
            for v in "${list[@]}"; do
                [[ $v == local-* && $rtt != "${RTTS%% *}" ]] && continue
                read -r med mn mx <<<"$(stats "$kind" "$v" "$rtt" 5)"
                read -r one _ _ <<<"$(stats "$kind" "$v" "$rtt" 6)"
                read -r all _ _ <<<"$(stats "$kind" "$v" "$rtt" 7)"
                read -r st _ _ <<<"$(stats "$kind" "$v" "$rtt" 9)"
                read -r ca _ _ <<<"$(stats "$kind" "$v" "$rtt" 10)"
                read -r cs _ _ <<<"$(stats "$kind" "$v" "$rtt" 11)"
                local vs="" rt=$rtt
                [[ $v == local-* ]] && rt="-"
                if [[ $v == wv* && -n $best ]]; then vs="$(f2 "$(awk -v b="$best" -v m="$med" 'BEGIN {print b / m}')")x faster"; fi
                echo "| $rt | $(label "$kind" "$v") | $(f2 "$med") | $(f2 "$mn")-$(f2 "$mx") | $(f1 "$(awk -v n="$N" -v m="$med" 'BEGIN {print n / m}')") |" \
                    "$(f1 "$(awk -v b="$WAL_BYTES" -v m="$med" 'BEGIN {print b / 1e6 / m}')") | $vs | $(mb "$one") / $(mb "$all") |" \
                    "$([[ $kind == drain ]] && f1 "$(awk -v b="$st" 'BEGIN {print b / 1e6}')" || echo -) | $(f1 "$ca") / $(f1 "$cs") |"
            done
        done
    done
    echo
    echo "CPU account per segment, CPU-ms (medians of the runs; $N segments). The floor: examples/floor.rs zstd:3, one process per segment (SHA-256 and zstd level 3, start-up included): $FLOOR_MS CPU-ms per segment ($FLOOR_INNER_MS ms inside the process). Commands: the archive_command / restore_command calls PostgreSQL reaped (with their sh and /usr/bin/time); helpers: the tool's long-lived processes (sampled every 0.1 s); PostgreSQL: the archiver's own CPU in a drain, the startup process's (replay) in a recovery; storage: s3s-fs, socat, latency-proxy; machine: all cores."
    echo
    echo "| kind | RTT | tool | commands | helpers | tool total | tool / floor | PostgreSQL | storage | machine |"
    echo "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
    local k kv
    for k in drain recovery; do
        local vlist=("${DRAINS[@]}")
        [[ $k == recovery ]] && vlist=("${RECOVERIES[@]}")
        for rtt in $RTTS; do
            for kv in "${vlist[@]}"; do
                [[ $kv == local-* && $rtt != "${RTTS%% *}" ]] && continue
                read -r cm _ _ <<<"$(stats "$k" "$kv" "$rtt" 12)"
                [[ $cm == nan ]] && continue
                read -r hp _ _ <<<"$(stats "$k" "$kv" "$rtt" 13)"
                read -r pg _ _ <<<"$(stats "$k" "$kv" "$rtt" 14)"
                read -r ca _ _ <<<"$(stats "$k" "$kv" "$rtt" 10)"
                read -r cs _ _ <<<"$(stats "$k" "$kv" "$rtt" 11)"
                local per tot ratio=""
                per() { awk -v x="$1" -v n="$N" 'BEGIN {printf "%.1f", x * 1000 / n}'; }
                tot=$(awk -v a="$cm" -v b="$hp" 'BEGIN {print a + b}')
                [[ $k == drain ]] && ratio="$(f2 "$(awk -v t="$(per "$tot")" -v f="$FLOOR_MS" 'BEGIN {print t / f}')")x"
                echo "| $k | $([[ $kv == local-* ]] && echo - || echo "$rtt") | $(label "$k" "$kv") | $(per "$cm") | $(per "$hp") | $(per "$tot") | $ratio | $(per "$pg") | $(per "$cs") | $(per "$ca") |"
            done
        done
    done
    echo
    echo "Failed archive_command calls per drain run (pg_stat_archiver.failed_count): $(awk -F'\t' '$1 == "drain" && $8 > 0 {printf "%s %s ms run %s: %s; ", $2, $3, $4, $8}' "$RAW")(none listed: none failed)."
}
cp "$RAW" "${RESULTS:-/dev/null}.raw.tsv" 2>/dev/null || true
report | tee "${RESULTS:-/dev/null}"
