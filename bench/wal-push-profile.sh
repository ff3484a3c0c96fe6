#!/usr/bin/env bash
# Where one wal-push run spends its time: per-stage wall times (from strace timestamps) and a
# CPU profile grouped by kind of work (from perf's cpu-clock sampling), for wal-push and for the
# floor (examples/floor.rs) on the same segment.
#
#     bash bench/wal-push-profile.sh SEGMENT [wal-push options...]
#     e.g. KEEP=1 bash bench/wal-push.sh   # keeps real segments under /tmp/walvault-bench.*/segs
#          bash bench/wal-push-profile.sh /tmp/walvault-bench.X/segs/pgbench/000000010000000000000011 \
#              --compression zstd --encryption-key-file /tmp/walvault-bench.X/key
#
# Settings: RUNS=20 (runs per measurement), CARGO_TARGET_DIR as for the build. Needs strace,
# linux-perf and gawk (installed from apt if missing). Run it on a quiet machine: the stage times
# are wall-clock. strace adds a little to every traced call; the perf figures are CPU time.
set -euo pipefail

(($# >= 1)) || { echo "usage: $0 SEGMENT [wal-push options...]" >&2; exit 2; }
SEG=$(realpath "$1")
shift
RUNS=${RUNS:-20}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
TARGET=${CARGO_TARGET_DIR:-$ROOT/target}

for tool in strace:strace perf:linux-perf gawk:gawk; do
    command -v "${tool%%:*}" >/dev/null || apt-get install -y -q "${tool#*:}" >&2
done
(cd "$ROOT" && cargo build --release --bin wal-push --example floor >&2)
WORK=$(mktemp -d /tmp/walvault-profile.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
REPO=$WORK/repo
PUSH=("$TARGET/release/wal-push" --repo "file://$REPO" "$@" "$SEG")
CODEC=zstd
for ((i = 1; i <= $#; i++)); do
    [[ ${!i} == --compression ]] && { j=$((i + 1)); CODEC=${!j}; }
done
FLOOR=("$TARGET/release/examples/floor" "$CODEC" "$SEG")

# One push creates the repository (walvault.json); the object is deleted before every run.
"${PUSH[@]}" 2>/dev/null
clean() { rm -f "$REPO"/wal/*/*; }

echo "wal-push ${*} $(basename "$SEG"): wall time per stage, $RUNS runs (strace timestamps)"
for _ in $(seq "$RUNS"); do
    clean
    strace -f --seccomp-bpf -ttt -T -o "$WORK/strace" \
        -e trace=execve,openat,fsync,linkat,unlink,exit_group "${PUSH[@]}" 2>/dev/null
    gawk -v seg="$(basename "$SEG")" '
        /execve\(/ && !t0 {t0 = $2}
        $0 ~ "openat.*/" seg "\"" && !opened {opened = $2}
        /openat.*#[0-9]+"/ {created = $2}
        /fsync\(/ {n++; match($0, /<[0-9.]+>/); d = substr($0, RSTART + 1, RLENGTH - 2); if (n == 1) {fs = $2; f1 = d}}
        /unlink\(/ {ul = $2}
        /exit_group/ {te = $2}
        END {print (opened - t0) * 1e3, (created - opened) * 1e3, (fs - created) * 1e3, f1 * 1e3,
                   (ul - fs - f1) * 1e3, (te - ul) * 1e3, (te - t0) * 1e3}' "$WORK/strace"
done | gawk '
    {for (i = 1; i <= NF; i++) v[i][NR] = $i}
    END {
        split("start-up (exec to opening the segment)|read + hash + compress + seal (to creating the object)|write the object|fsync the object|link, fsync the directory, unlink|log, runtime shutdown, exit|total", name, "|")
        for (i = 1; i <= 7; i++) {n = asort(v[i], a); printf "  %-58s median %7.2f ms   min %7.2f ms\n", name[i], a[int((n + 1) / 2)], a[1]}
    }'

# perf categories: the same grouping for wal-push (all its threads) and the floor.
categories() {
    gawk -v runs="$RUNS" -v ms="$1" '
    {
        n = $2; sym = $0; sub(/^.*\] /, "", sym); k = ($3 == "[k]")
        c = "other (user)"
        if (sym ~ /^(ZSTD|HIST|FSE|HUF)/) c = "zstd"
        else if (sym ~ /LZ4|lz4/) c = "lz4"
        else if (sym ~ /sha2|sha256/) c = "SHA-256"
        else if (sym ~ /aes|polyval|ghash|universal_hash|gcm/) c = "AES-GCM"
        else if (sym ~ /memmove|memcpy|memset/) c = "memcpy / memset"
        else if (k && sym ~ /fault|page|folio|anon|pte|mm_|vma|mas_|lru|memcg|charge|tlb|mmap|munmap/) c = "kernel: page faults, memory"
        else if (k && sym ~ /copy_to_iter|filemap|read/) c = "kernel: reading the segment"
        else if (k && sym ~ /ext4|jbd2|write|blk|bio|sync|submit|virtio|iowrite|copy_folio_from_iter|xas/) c = "kernel: writing, fsync"
        else if (k) c = "kernel: other (scheduling, thread start and exit, syscalls)"
        else if (sym ~ /_dl_|do_lookup|check_match|strcmp|tunables|init_cpu|cpu_indicator/) c = "dynamic loading"
        s[c] += n; t += n
    }
    END {for (c in s) printf "%.2f\t%s\n", s[c] * ms / runs, c; printf "%.2f\t%s\n", t * ms / runs, "total CPU per run"}' |
        sort -rn | gawk -F'\t' '{printf "  %-62s %7.2f ms\n", $2, $1}'
}
for who in wal-push floor; do
    if [[ $who == wal-push ]]; then cmd=("${PUSH[@]}") comm=wal-push,tokio-rt-worker; else cmd=("${FLOOR[@]}") comm=floor; fi
    # 4000 samples a second: one sample is 0.25 ms of CPU.
    # shellcheck disable=SC2016 # expanded by the inner shell
    perf record -q -F 4000 -e cpu-clock -o "$WORK/perf.data" -- bash -c \
        'runs=$1 repo=$2; shift 2; for _ in $(seq "$runs"); do rm -f "$repo"/wal/*/*; "$@" >/dev/null 2>&1; done' \
        _ "$RUNS" "$REPO" "${cmd[@]}" 2>/dev/null
    echo "$who: CPU time per run by kind of work (perf cpu-clock samples, all threads)"
    perf report -i "$WORK/perf.data" --comm "$comm" -n --sort sym --stdio 2>/dev/null |
        grep -v '^#' | grep -v '^$' | categories 0.25
done
