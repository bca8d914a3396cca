#!/usr/bin/env bash
# scripts/bench faults: issue 28's acceptance trial. Through the fault proxy of the test
# suite, at 15% of each kind of fault (reset before the request, lost answer, reset
# mid-body, truncated body, 503, 500, 429, an answer 8 s late before its headers or
# mid-body, 429/503 with Retry-After), RUNS download runs and RUNS upload runs of one
# job (one 48 MiB blob and 500 small files, the agent's own sizes and read timeout,
# connections kept alive) must all land byte-exact, with the retries in the log.
#
#   scripts/bench faults            # 20 runs per kind and direction (long: about an hour)
#   RUNS=3 scripts/bench faults     # a quicker look
#
# The suite runs the same trials on a small data set, a few runs per kind
# (`cargo test --test e2e fault_trials`). Needs what the e2e tests need (scripts/test).
set -euo pipefail
cd "$(dirname "$0")/../.."
export STAGEHAND_FAULT_JOB=issue STAGEHAND_FAULT_RUNS=${RUNS:-20}
start=$(date +%s)
cargo test --release --locked --test e2e -- --test-threads=1 --nocapture \
  fault_trials::resets fault_trials::truncated fault_trials::server_busy \
  fault_trials::slow_answers fault_trials::throttling 2>&1 |
  grep -E "faults injected|^test |test result|panicked"
echo "faults: $STAGEHAND_FAULT_RUNS runs per kind and direction in $(( $(date +%s) - start )) s"
