#!/usr/bin/env bash
# scripts/bench sync: what `sync` saves at the job's end, and what its passes cost.
#
# A job writes CKPTS checkpoints of SIZE_MIB MiB, one a second, into an output on a
# local datastore (so the numbers are the agent's, not a network's), then exits. Run
# twice: without `sync` (everything goes up after the job) and with `sync: 2s`. For
# each: the tail (the `exited` event to `finished`: what a preempted node would still
# have to upload), the run's wall time, the agent's CPU time, and for the sync run the
# passes (count, mean duration of passes that uploaded nothing: listing the folder and
# scanning /proc for writers).
#
#   CKPTS=10 SIZE_MIB=64 scripts/bench sync
#   STAGEHAND=path/to/stagehand scripts/bench sync   # default: target/release, else debug
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
ckpts=${CKPTS:-10}
size=${SIZE_MIB:-64}
bin=${STAGEHAND:-}
[ -n "$bin" ] || { [ -x target/release/stagehand ] && bin=$root/target/release/stagehand || bin=$root/target/debug/stagehand; }
[ -x "$bin" ] || { echo "no stagehand binary at $bin: cargo build --release -p stagehand" >&2; exit 1; }
d=$(mktemp -d /tmp/stagehand-bench-sync-XXXXXX)
trap 'rm -rf "$d"' EXIT
printf 'default_datastore: local\ndatastores:\n  local: {type: local, root: ./store}\n' >"$d/workspace.yaml"
mkdir -p "$d/store"
for mode in none sync; do
  extra=""
  [ "$mode" = sync ] && extra=", sync: 2s"
  cat >"$d/$mode.yaml" <<JOB
name: bench-$mode
command: [bash, -c, 'for i in \$(seq -w 1 $ckpts); do head -c ${size}M /dev/urandom > "\$1/ckpt-\$i.pt"; sleep 1; done', bash, "\${{outputs.ckpt}}"]
outputs:
  ckpt: {path: "runs/{run_id}", mode: upload$extra}
JOB
  start=$(date +%s.%N)
  cpu=$( { /usr/bin/env TIMEFORMAT='%U %S' bash -c "time '$bin' run '$d/$mode.yaml' --run-id '$mode' --run-dir '$d/run-$mode' --events '$d/$mode.jsonl' >/dev/null 2>'$d/$mode.log'"; } 2>&1 | tail -1)
  end=$(date +%s.%N)
  python3 - "$d/$mode.jsonl" "$mode" "$start" "$end" "$cpu" <<'PY'
import json, sys, datetime
events = [json.loads(l) for l in open(sys.argv[1])]
mode, start, end, cpu = sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), sys.argv[5].split()
t = lambda e: datetime.datetime.fromisoformat(e["ts"].replace("Z", "+00:00")).timestamp()
first = lambda k: next(e for e in events if e["event"] == k)
tail = t(first("finished")) - t(first("exited"))
passes = [e for e in events if e["event"] == "sync_pass"]
idle = [p["duration_ms"] for p in passes if p["files"] == 0]
fin = first("finished")
line = f"{mode:5} status={fin['status']} wall={end-start:.2f}s tail(exited->finished)={tail:.3f}s agent_cpu={float(cpu[0])+float(cpu[1]):.2f}s uploaded={fin['bytes_uploaded']>>20}MiB"
if passes:
    line += f" passes={len(passes)} synced_files={sum(p['files'] for p in passes)} idle_pass_mean={sum(idle)/max(len(idle),1):.1f}ms"
print(line)
PY
done
