#!/usr/bin/env bash
# scripts/bench container: the agent's own overhead on a containerised job with no data.
#
# Times `stagehand run` of a job that runs `true` in a busybox image against
# `docker run --rm` of the same command in the same image (both: create, attach, start,
# wait, remove), with hyperfine, and prints the ratio of the means and the difference.
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
hyperfine --warmup 3 --runs "$runs" --export-json "$work/result.json" \
  -n "docker run --rm" "docker run --rm $image true" \
  -n "stagehand run" "$STAGEHAND -qq run $work/job.yaml"

python3 - "$work/result.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
d, s = r["docker run --rm"], r["stagehand run"]
print(f"docker run --rm : {d['mean']*1000:7.1f} ms ± {d['stddev']*1000:.1f} (median {d['median']*1000:.1f})")
print(f"stagehand run   : {s['mean']*1000:7.1f} ms ± {s['stddev']*1000:.1f} (median {s['median']*1000:.1f})")
print(f"ratio stagehand / docker run: {s['mean']/d['mean']:.2f} (means), {s['median']/d['median']:.2f} (medians); "
      f"difference {1000*(s['mean']-d['mean']):+.1f} ms")
PY
left=$(docker ps -aq --filter label=io.stagehand.job=bench 2>/dev/null | wc -l)
[ "$left" = 0 ] || echo "warning: $left stagehand container(s) left behind" >&2
