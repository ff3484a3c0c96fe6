#!/usr/bin/env bash
# The soak variant of the kill storm (tests/pg-integration/kill_storm.rs): runs it again and
# again, each round with a new seed and a longer load, until SOAK_HOURS have passed or a round
# fails (its seed is printed; WALVAULT_TEST_SEED=<seed> repeats that round's schedule).
#   SOAK_HOURS=4 STORM_SECS=120 bash scripts/soak.sh
set -euo pipefail
cd "$(dirname "$0")/.."
hours=${SOAK_HOURS:-1}
secs=${STORM_SECS:-120}
end=$(( $(date +%s) + hours * 3600 ))
round=0
log=target/soak.log
mkdir -p target
: >"$log"
while [ "$(date +%s)" -lt "$end" ]; do
  round=$((round + 1))
  seed=$(od -An -N8 -tu8 /dev/urandom | tr -d ' ')
  echo "round $round: seed $seed, ${secs}s of load" | tee -a "$log"
  if ! WALVAULT_TEST_SEED=$seed WALVAULT_TEST_STORM_SECS=$secs \
      bash scripts/test.sh -E 'test(pg_kill_storm)' --no-capture >target/soak-round.log 2>&1; then
    grep -E "seed|side|checked|panicked" target/soak-round.log | tee -a "$log" || true
    echo "round $round FAILED (seed $seed): full output in target/soak-round.log" | tee -a "$log"
    exit 1
  fi
  grep -E "side|checked" target/soak-round.log | tee -a "$log"
done
echo "$round rounds passed in ${hours} h (summary in $log)"
