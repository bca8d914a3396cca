#!/usr/bin/env bash
# scripts/bench container: the agent's own overhead on a containerised job with no data.
#
# Times `stagehand run` of a job that runs `true` in a busybox image against
# `docker run --rm` of the same command in the same image (both: create, attach, start,
# wait, remove): with hyperfine (wall and client CPU time), then interleaved pair by
# pair; prints the ratio and the difference.
#
#   RUNS=30 scripts/bench container      # default 20 runs each, 3 warm-ups
#   STAGEHAND=path/to/stagehand scripts/bench container   # default: a release build
#
# Needs: a Docker engine (scripts/test starts one), hyperfine and busybox-static (apt).
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
runs=${RUNS:-20}
image=stagehand-test-busybox:latest

command -v hyperfine >/dev/null || { echo "hyperfine is not installed: apt-get install hyperfine" >&2; exit 1; }
docker info >/dev/null 2>&1 || { echo "no Docker engine answers: start dockerd (scripts/test does), or set DOCKER_HOST" >&2; exit 1; }

if ! docker image inspect "$image" >/dev/null 2>&1; then
  busybox=$(command -v busybox || true)
  [ -n "$busybox" ] || { echo "busybox-static is not installed: apt-get install busybox-static" >&2; exit 1; }
  rootfs=$(mktemp -d)
  mkdir -p "$rootfs/bin" "$rootfs/etc" "$rootfs/tmp"
  cp "$busybox" "$rootfs/bin/busybox"
  for t in sh true cat ls; do ln -s busybox "$rootfs/bin/$t"; done
  echo 'root:x:0:0:root:/root:/bin/sh' >"$rootfs/etc/passwd"
  tar -C "$rootfs" -c . | docker import - "$image" >/dev/null
  rm -rf "$rootfs"
fi

if [ -z "${STAGEHAND:-}" ]; then
  cargo build --release -q -p stagehand
  STAGEHAND=$root/target/release/stagehand
fi

work=$(mktemp -d -t stagehand-bench-container.XXXXXX)
trap 'rm -rf "$work"' EXIT
cat >"$work/job.yaml" <<YAML
name: bench
command: ["true"]
container: {image: "$image", pull: never}
YAML

export STAGEHAND_RUNS_DIR=$work/runs
docker_cmd="docker run --rm $image true"
stagehand_cmd="$STAGEHAND -qq run $work/job.yaml"

# 1. hyperfine: each command's wall time and the CPU time of the client processes.
hyperfine --warmup 3 --runs "$runs" --export-json "$work/result.json" \
  -n "docker run --rm" "$docker_cmd" -n "stagehand run" "$stagehand_cmd"

# 2. The two interleaved, pair by pair, alternating which goes first: on a shared
#    machine the load drifts between hyperfine's two blocks; a pair sees the same load.
python3 - "$work/result.json" "$runs" "$docker_cmd" "$stagehand_cmd" <<'PY'
import json, shlex, statistics, subprocess, sys, time
result, runs, docker_cmd, stagehand_cmd = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4]
r = {x["command"]: x for x in json.load(open(result))["results"]}
for name, x in r.items():
    print(f"{name:16}: mean {x['mean']*1000:7.1f} ms ± {x['stddev']*1000:5.1f}, median {x['median']*1000:7.1f} ms; "
          f"client CPU {1000*(x['user']+x['system']):5.1f} ms")

def timed(cmd):
    t = time.perf_counter()
    subprocess.run(shlex.split(cmd), check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t

d, s, ratios = [], [], []
for i in range(runs):
    if i % 2:
        b, a = timed(stagehand_cmd), timed(docker_cmd)
    else:
        a, b = timed(docker_cmd), timed(stagehand_cmd)
    d.append(a); s.append(b); ratios.append(b / a)
md, ms = statistics.median(d), statistics.median(s)
print(f"interleaved, {runs} pairs: docker run --rm median {md*1000:.1f} ms, stagehand run median {ms*1000:.1f} ms")
print(f"ratio stagehand / docker run: {statistics.median(ratios):.2f} (median of pairs); "
      f"difference of medians {1000*(ms-md):+.1f} ms")
PY
left=$(docker ps -aq --filter label=io.stagehand.job=bench 2>/dev/null | wc -l)
[ "$left" = 0 ] || echo "warning: $left stagehand container(s) left behind" >&2
