#!/usr/bin/env bash
# scripts/bench distributed: 3 nodes x 2 ranks, in containers vs as host processes: time to every rank started, overhead per rank.
#
# One job of `distribution: {type: pytorch, process_count_per_instance: 2,
# instance_count: 3}` started by no scheduler, so its three nodes run on this machine
# (six ranks, one agent), each rank only writing the time it started. Four ways, RUNS
# times each (default 10), interleaved so that they see the same load:
#   agent-host        `stagehand run` of the job as host processes
#   agent-container   `stagehand run` of the job in an image (one container per rank)
#   bare-host         the six ranks' command started by a shell, in parallel
#   bare-container    six `docker run --rm --network host --ipc host` of it, in parallel
# Printed, as medians: from the start of the command to the last rank's start ("all
# started"), the wall time to the end, and the agent's overhead per rank: (agent wall -
# bare wall) / 6, against the bare way of the same kind.
#
#   RUNS=20 scripts/bench distributed
#   STAGEHAND=path/to/stagehand scripts/bench distributed   # default: target/release, else debug
#
# Needs: a Docker engine (scripts/test starts one) and busybox-static (the image is
# busybox running the host's coreutils `date` through a read-only bind of /usr).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
runs=${RUNS:-10}
image=stagehand-test-python:latest
bin=${STAGEHAND:-}
[ -n "$bin" ] || { [ -x target/release/stagehand ] && bin=$root/target/release/stagehand || bin=$root/target/debug/stagehand; }
[ -x "$bin" ] || { echo "no stagehand binary at $bin: cargo build --release -p stagehand" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "no Docker engine answers: start dockerd (scripts/test does), or set DOCKER_HOST" >&2; exit 1; }

# The image the tests build (tests/common/docker.rs, python_image): busybox, with /lib
# and /lib64 pointing into the /usr the job binds from the host.
if ! docker image inspect "$image" >/dev/null 2>&1; then
  busybox=$(command -v busybox || true)
  [ -n "$busybox" ] || { echo "busybox-static is not installed: apt-get install busybox-static" >&2; exit 1; }
  rootfs=$(mktemp -d)
  mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp" "$rootfs/usr"
  cp "$busybox" "$rootfs/bin/busybox"
  ln -s busybox "$rootfs/bin/sh"
  printf '#!/bin/sh\nexec /bin/sh "$@"\n' >"$rootfs/bin/bash"; chmod 755 "$rootfs/bin/bash"
  ln -s usr/lib "$rootfs/lib"; ln -s usr/lib64 "$rootfs/lib64"
  echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
  tar -C "$rootfs" -c . | docker import - "$image" >/dev/null
  rm -rf "$rootfs"
fi

w=$(mktemp -d -t stagehand-bench-distributed.XXXXXX)
trap 'rm -rf "$w"' EXIT
mkdir -p "$w/store"
printf 'datastores:\n  local: {type: local, root: store}\ndefault_datastore: local\n' >"$w/workspace.yaml"
# Each rank writes the time it started (ns) to its output, named by its rank.
rank_cmd='/usr/bin/date +%s%N > "$1/start.$RANK"'
cat >"$w/host.yaml" <<JOB
name: bench-host
command: [sh, -c, '$rank_cmd', sh, "\${{outputs.out}}"]
distribution: {type: pytorch, process_count_per_instance: 2, instance_count: 3}
outputs:
  out: {path: out, mode: upload}
JOB
cat >"$w/container.yaml" <<JOB
name: bench-container
command: [sh, -c, '$rank_cmd', sh, "\${{outputs.out}}"]
container:
  image: $image
  pull: never
  volumes: [{host: /usr, container: /usr}]
distribution: {type: pytorch, process_count_per_instance: 2, instance_count: 3}
outputs:
  out: {path: out, mode: upload}
JOB
export STAGEHAND_RUNS_DIR=$w/runs

# One way, once: "<start ns> <last rank's start ns> <end ns>" appended to $w/<way>.times.
once() {
  local way=$1 out=$w/bare-out
  rm -rf "$w/store/out" "$out"; mkdir -p "$out"
  local s e
  s=$(date +%s%N)
  case $way in
    agent-host) "$bin" -qq run "$w/host.yaml" --run-id "h$s" >/dev/null 2>&1; out=$w/store/out ;;
    agent-container) "$bin" -qq run "$w/container.yaml" --run-id "c$s" >/dev/null 2>&1; out=$w/store/out ;;
    bare-host)
      for r in 0 1 2 3 4 5; do RANK=$r sh -c "$rank_cmd" sh "$out" & done; wait ;;
    bare-container)
      for r in 0 1 2 3 4 5; do
        docker run --rm --network host --ipc host -e RANK=$r -v /usr:/usr:ro -v "$out:/out" "$image" sh -c "$rank_cmd" sh /out >/dev/null &
      done; wait ;;
  esac
  e=$(date +%s%N)
  local last
  last=$(cat "$out"/start.* | sort -n | tail -1)
  [ "$(ls "$out" | wc -l)" = 6 ] || { echo "$way: not every rank started" >&2; exit 1; }
  echo "$s $last $e" >>"$w/$way.times"
}

echo "stagehand: $bin; 3 nodes x 2 ranks on this machine ($(nproc) cores), $runs runs each"
ways=(agent-host agent-container bare-host bare-container)
once agent-host; once agent-container; : >"$w/agent-host.times"; : >"$w/agent-container.times"  # warm-up
for i in $(seq "$runs"); do
  # Rotate the order so that no way always runs first.
  for j in 0 1 2 3; do once "${ways[$(( (i + j) % 4 ))]}"; done
done
python3 - "$w" <<'PY'
import statistics, sys
w = sys.argv[1]
def rows(way):
    return [tuple(map(int, l.split())) for l in open(f"{w}/{way}.times") if l.strip()]
med = {}
for way in ["agent-host", "agent-container", "bare-host", "bare-container"]:
    r = rows(way)
    started = statistics.median((l - s) / 1e6 for s, l, _ in r)
    wall = statistics.median((e - s) / 1e6 for s, _, e in r)
    med[way] = wall
    print(f"{way:<16} all 6 ranks started {started:8.1f} ms   wall {wall:8.1f} ms   ({len(r)} runs)")
for kind in ["host", "container"]:
    per = (med[f"agent-{kind}"] - med[f"bare-{kind}"]) / 6
    print(f"agent overhead per rank, {kind:<9}: {per:7.1f} ms  ((agent wall - bare wall) / 6)")
PY
