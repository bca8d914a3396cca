#!/usr/bin/env bash
# scripts/bench resources: the cost of reading the allocation (GPUs, CPUs, memory) under srun.
#
# Starts the private test cluster (slurm-cluster.bash: 3 nodes of 4 CPUs, 4 GiB and 4
# fake GPUs), then, inside one srun step each (so srun's own start is not counted),
# times RUNS (default 20) invocations of:
#   plan-process     `stagehand plan` of a no-data process job (GPUs and CPUs read
#                    from the variables; memory not needed)
#   plan-container   the same job in a container (`gpus: all` with a GRES): memory
#                    is read too, from `scontrol show job` when srun set no
#                    SLURM_MEM_PER_* variable (a job made by srun alone)
#   plan-container-memvar  the container job in a step that has SLURM_MEM_PER_NODE
#                    (as a batch script's steps inherit it): no scontrol
#   run-process      `stagehand run` of the no-data process job (`true`)
# each without and with `--gres=gpu:2`, and `plan` outside Slurm as the baseline.
# Printed: mean and p50/p95 per invocation, in ms.
#
#   RUNS=20 scripts/bench resources
#   STAGEHAND=path/to/stagehand scripts/bench resources   # default: target/release, else debug
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
runs=${RUNS:-20}
bin=${STAGEHAND:-}
[ -n "$bin" ] || { [ -x target/release/stagehand ] && bin=$root/target/release/stagehand || bin=$root/target/debug/stagehand; }
[ -x "$bin" ] || { echo "no stagehand binary at $bin: cargo build --release -p stagehand" >&2; exit 1; }
. "$root/scripts/bench.d/slurm-cluster.bash"

w=$d/work
printf 'name: nodata\ncommand: ["true"]\n' >"$w/process.yaml"
printf 'name: nodata\ncommand: ["true"]\ncontainer: {image: busybox, gpus: all}\n' >"$w/container-gpu.yaml"
printf 'name: nodata\ncommand: ["true"]\ncontainer: {image: busybox}\n' >"$w/container.yaml"

# times NAME CMD: RUNS timings of CMD (ns each) into $w/NAME.times, run where it is called.
cat >"$w/times.sh" <<'SH'
name=$1; shift
: >"$W/$name.times"
for _ in $(seq "$RUNS"); do
  s=$(date +%s%N); "$@" >/dev/null 2>&1 || echo "FAILED: $*" >&2; e=$(date +%s%N)
  echo "$s $e" >>"$W/$name.times"
done
SH
report() {
  python3 - "$w/$1.times" "$1" <<'PY'
import sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
d = sorted((e - s) / 1e6 for s, e in rows)
pct = lambda p: d[min(len(d) - 1, int(p * len(d)))]
print(f"{sys.argv[2]:<28} runs {len(d):>3}  mean {sum(d)/len(d):7.1f} ms  p50 {pct(.5):7.1f}  p95 {pct(.95):7.1f}")
PY
}
export W=$w RUNS=$runs STAGEHAND_RUNS_DIR=$w/runs
step() { # step LABEL SRUN-ARGS... -- NAME CMD...
  local label=$1; shift
  local args=(); while [ "$1" != -- ]; do args+=("$1"); shift; done; shift
  local name=$1; shift
  srun -w n1 "${args[@]}" bash "$w/times.sh" "$name-$label" "$@"
  report "$name-$label"
}

echo "stagehand: $bin; $runs runs each, inside one srun step on a node of 4 CPUs, 4 GiB, 4 fake GPUs ($(nproc) real cores)"
env -u SLURM_JOB_ID bash "$w/times.sh" plan-process-outside "$bin" plan "$w/process.yaml"; report plan-process-outside
env -u SLURM_JOB_ID bash "$w/times.sh" plan-container-outside "$bin" plan "$w/container.yaml"; report plan-container-outside
step nogres -- plan-process "$bin" plan "$w/process.yaml"
step gres --gres=gpu:2 -- plan-process "$bin" plan "$w/process.yaml"
step nogres -- plan-container "$bin" plan "$w/container.yaml"
step gres --gres=gpu:2 -- plan-container-gpu "$bin" plan "$w/container-gpu.yaml"
SLURM_MEM_PER_NODE=256 step memvar -- plan-container "$bin" plan "$w/container.yaml"
step nogres -- run-process "$bin" run "$w/process.yaml" --events /dev/null
step gres --gres=gpu:2 -- run-process "$bin" run "$w/process.yaml" --events /dev/null
