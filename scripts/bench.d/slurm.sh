#!/usr/bin/env bash
# scripts/bench slurm: agent overhead per task in 100-task Slurm arrays, vs the bare script.
#
# Starts a private 3-node cluster on this machine (as tests/common/slurm.rs does: its
# own munged, slurmctld and three slurmd on free loopback ports, torn down on exit),
# then runs four arrays of TASKS (default 100) tasks each:
#   bare-nodata   the script `true`, bare
#   agent-nodata  `stagehand run` of a job running `true`, no data
#   bare-data     cp of a small input (FILES files of SIZE bytes) in, `true`, cp of
#                 one output file back, bare
#   agent-data    the same through stagehand: download input, run, upload output
#                 (a local datastore, so the numbers are the agent's, not a network's)
# Each task records its own start and end (ns); printed: mean and p50/p95 per task,
# and the array's span (first start to last end). The agent overhead per task is the
# difference of the means.
#
#   TASKS=100 FILES=10 SIZE=16384 scripts/bench slurm
#   STAGEHAND=path/to/stagehand scripts/bench slurm   # default: target/release, else debug
#
# Needs: slurm-wlm and munge (scripts/test installs them).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
tasks=${TASKS:-100}
files=${FILES:-10}
size=${SIZE:-16384}
bin=${STAGEHAND:-}
[ -n "$bin" ] || { [ -x target/release/stagehand ] && bin=$root/target/release/stagehand || bin=$root/target/debug/stagehand; }
[ -x "$bin" ] || { echo "no stagehand binary at $bin: cargo build --release -p stagehand" >&2; exit 1; }
for p in munged slurmctld slurmd sbatch; do
  command -v "$p" >/dev/null || { echo "$p is not installed: apt-get install slurm-wlm munge (scripts/test does)" >&2; exit 1; }
done

d=$(mktemp -d /tmp/stagehand-bench-slurm-XXXXXX)
chmod 755 "$d"
pids=()
cleanup() {
  SLURM_CONF=$d/slurm.conf scancel --full -u "$(id -un)" 2>/dev/null || true
  for ((i=${#pids[@]}-1; i>=0; i--)); do kill "${pids[$i]}" 2>/dev/null || true; done
  for p in "${pids[@]}"; do
    for _ in $(seq 75); do kill -0 "$p" 2>/dev/null || break; sleep 0.2; done
    kill -9 "$p" 2>/dev/null || true
  done
  rm -rf "$d"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

mkdir -p "$d"/{state,log,munge,spool/n1,spool/n2,spool/n3,work}
chmod 755 "$d/munge"
head -c 1024 /dev/urandom >"$d/munge/key"; chmod 400 "$d/munge/key"
ctld=$(free_port)
# The test cluster's own slurm.conf (tests/common/slurm.conf.in), then the nodes.
sed -e "s|@NAME@|bench|" -e "s|@CTLD@|$ctld|g" -e "s|@DIR@|$d|g" -e "s|@USER@|$(id -un)|g" \
  "$root/tests/common/slurm.conf.in" >"$d/slurm.conf"
for n in 1 2 3; do
  echo "NodeName=n$n NodeHostname=localhost NodeAddr=127.0.0.1 CPUs=4 RealMemory=4096 Port=$(free_port)" >>"$d/slurm.conf"
done
echo "PartitionName=debug Nodes=n[1-3] Default=YES MaxTime=INFINITE State=UP" >>"$d/slurm.conf"
export SLURM_CONF=$d/slurm.conf

munged --foreground --key-file="$d/munge/key" --socket="$d/munge/sock" --pid-file="$d/munge/pid" \
  --log-file="$d/munge/log" --seed-file="$d/munge/seed" --num-threads=4 >"$d/log/munged.out" 2>&1 & pids+=($!)
for _ in $(seq 50); do [ -S "$d/munge/sock" ] && break; sleep 0.1; done
slurmctld -D -c -f "$SLURM_CONF" >"$d/log/ctld.out" 2>&1 & pids+=($!)
for n in n1 n2 n3; do slurmd -D -N "$n" -f "$SLURM_CONF" >"$d/log/$n.out" 2>&1 & pids+=($!); done
for _ in $(seq 150); do
  [ "$(sinfo -h -N -o '%t' 2>/dev/null | grep -c idle)" = 3 ] && break; sleep 0.2
done
[ "$(sinfo -h -N -o '%t' | grep -c idle)" = 3 ] || { echo "the cluster did not start; see $d/log" >&2; tail "$d"/log/*; exit 1; }

# The data: FILES files of SIZE bytes on a local datastore.
w=$d/work
mkdir -p "$w/store/in"
for i in $(seq -w 1 "$files"); do head -c "$size" /dev/urandom >"$w/store/in/f$i"; done
printf 'datastores:\n  local: {type: local, root: store}\ndefault_datastore: local\n' >"$w/workspace.yaml"
cat >"$w/nodata.yaml" <<'JOB'
name: nodata
command: ["true"]
JOB
cat >"$w/data.yaml" <<'JOB'
name: data
command: [sh, -c, 'cat "$1"/* > "$2/sum"', sh, "${{inputs.data}}", "${{outputs.out}}"]
inputs:
  data: {path: in, mode: download}
outputs:
  out: {path: "agent-out/{task_index}", mode: upload}
JOB

# One array; each task appends "start end" (ns) to $w/<name>.times.
array() {
  local name=$1 cmd=$2
  : >"$w/$name.times"
  sbatch --wait --quiet --array=0-$((tasks - 1)) -o /dev/null -D "$w" --export=ALL,STAGEHAND_RUNS_DIR="$w/runs-$name" \
    --wrap "s=\$(date +%s%N); $cmd; rc=\$?; e=\$(date +%s%N); echo \$s \$e \$rc >> $w/$name.times" >/dev/null
  python3 - "$w/$name.times" "$name" <<'PY'
import sys
rows = [tuple(map(int, l.split())) for l in open(sys.argv[1]) if l.strip()]
failed = sum(1 for _, _, rc in rows if rc != 0)
d = sorted((e - s) / 1e6 for s, e, _ in rows)
span = (max(e for _, e, _ in rows) - min(s for s, _, _ in rows)) / 1e9
pct = lambda p: d[min(len(d) - 1, int(p * len(d)))]
print(f"{sys.argv[2]:<13} tasks {len(d):>4}  per task mean {sum(d)/len(d):8.1f} ms  p50 {pct(.5):8.1f}  p95 {pct(.95):8.1f}  span {span:6.2f} s" + (f"  FAILED {failed}" if failed else ""))
PY
}

echo "stagehand: $bin; $tasks tasks per array on 3 nodes x 4 CPUs ($(nproc) real cores); data: $files files x $size bytes"
array bare-nodata "true"
array agent-nodata "$bin run $w/nodata.yaml --log-format json 2>/dev/null"
array bare-data 'o=$(mktemp -d); cp -r store/in "$o/in"; mkdir -p "$o/out" bare-out/$SLURM_ARRAY_TASK_ID; cat "$o"/in/* > "$o/out/sum"; cp "$o/out/sum" bare-out/$SLURM_ARRAY_TASK_ID/; rm -rf "$o"'
array agent-data "$bin run $w/data.yaml --log-format json 2>/dev/null"
