#!/usr/bin/env bash
# scripts/bench faults: issue 28's acceptance trial. Through the fault proxy of the test
# suite, at 15% of each kind of fault (reset before the request, lost answer, reset
# mid-body, truncated body, 503, 500, 429, an answer 8 s late before its headers or
# mid-body, 429/503 with Retry-After), RUNS download runs and RUNS upload runs of one
# job (one 48 MiB blob and 500 small files, the agent's own sizes and read timeout,
# connections kept alive) must all land byte-exact, with the retries in the log. Then
# ARRAY (TASKSxBLOBS, default issue 28's 20x500) Slurm array tasks on the test cluster
# read the same small blobs through a proxy answering 30% of requests 503 with
# Retry-After: 1, and must all finish byte-exact.
#
#   scripts/bench faults            # 20 runs per kind and direction (long: about 1.5 hours
#                                   # on 2 cores; an 8 s delay kind takes about 15 min, a
#                                   # reset, status or Retry-After kind 5-10 min)
#   RUNS=3 scripts/bench faults     # a quicker look
#   ARRAY=no scripts/bench faults   # without the array trial
#   RUNS=0 scripts/bench faults     # the array trial only
#
# The suite runs the same trials on a small data set, a few runs per kind, and the
# array at 20x40 (`cargo test --test e2e fault_trials`). Needs what the e2e tests need
# (scripts/test).
set -euo pipefail
cd "$(dirname "$0")/../.."
export STAGEHAND_FAULT_JOB=issue STAGEHAND_FAULT_RUNS=${RUNS:-20}
array=${ARRAY:-20x500}
trials=()
if [ "$STAGEHAND_FAULT_RUNS" != 0 ]; then
  trials+=(fault_trials::resets fault_trials::truncated fault_trials::server_busy
    fault_trials::slow_answers fault_trials::throttling)
fi
if [ "$array" != no ]; then
  export STAGEHAND_FAULT_ARRAY=$array
  trials+=(fault_trials::array_tasks)
fi
start=$(date +%s)
# The whole output is kept: a failure's message (which task, what it said) is in it.
log=$(mktemp -t stagehand-bench-faults.XXXXXX.log)
cargo test --release --locked --test e2e -- --test-threads=1 --nocapture "${trials[@]}" 2>&1 |
  tee "$log" | grep --line-buffered -E "faults injected|^array:|^test |test result|panicked"
echo "faults: $STAGEHAND_FAULT_RUNS runs per kind and direction, array $array, in $(( $(date +%s) - start )) s; the whole output: $log"
