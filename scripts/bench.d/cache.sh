#!/usr/bin/env bash
# The node cache: N sequential and M concurrent runs of a job reading a 1 GiB blob and 100 x 10 MiB, with and without it.
#
#   scripts/bench cache                 SEQ=20 CONC=10, both modes
#   SEQ=N CONC=M                        runs in the sequential and the concurrent phase
#   MODES="cache nocache"               with the node cache (its default bound, 20 GiB)
#                                       and without it (STAGEHAND_CACHE_SIZE=0)
#   KEEP_RUNS=1                         keep every run folder (default: each is removed
#                                       once its run ends, as a scheduler's clean-up
#                                       would; kept, they hold a copy each without the
#                                       cache and hard links with it)
#   STAGEHAND=PATH                      the binary (default: a release build of this
#                                       checkout, built here)
#   BENCH_WORK=DIR                      work folder (data, Azurite, runs, cache)
#
# Data: big/1GiB.bin and medium/mNNN.bin from the blob benchmark's gen.py (deterministic),
# uploaded once with `stagehand datastore upload` into a private Azurite on
# $CACHE_BENCH_PORT (default 10170). The job reads both inputs whole (`cat`).
#
# Reports per mode and phase: wall time of the first run and the median/max of the
# runs after it (sequential), or of all runs (concurrent, started together); bytes
# fetched from the emulator (the sum of the runs' `finished.bytes_downloaded`, what the
# agents read from Azurite's answers); cache hits and misses; and the peak disk use of
# the run folders and the cache together (`du`, sampled every 0.5 s, hard links
# counted once).
set -euo pipefail
. "$(dirname "$0")/blob/lib.sh"
SEQ=${SEQ:-20}
CONC=${CONC:-10}
MODES=${MODES:-cache nocache}
PORT=${CACHE_BENCH_PORT:-10170}
if [ ! -x "$AZURITE" ]; then
  AZURITE=$BENCH_REPO/.tools/npm/node_modules/.bin/azurite-blob
  [ -x "$AZURITE" ] || AZURITE=$(command -v azurite-blob) || die "no Azurite: run scripts/test's setup or set AZURITE"
fi
export AZURITE
if [ -z "${STAGEHAND:-}" ]; then
  (cd "$BENCH_REPO" && cargo build --release -p stagehand --quiet)
  STAGEHAND=$BENCH_REPO/target/release/stagehand
fi
work=$BENCH_WORK/cache-bench
mkdir -p "$work"

if [ ! -f "$DATA/big/1GiB.bin" ] || [ ! -f "$DATA/medium/m099.bin" ]; then
  echo "generating datasets in $DATA" >&2
  python3 "$BENCH_HERE/gen.py" "$DATA"
fi
bash "$BENCH_HERE/azurite.sh" start "$PORT" >&2
trap 'bash "$BENCH_HERE/azurite.sh" stop "$PORT" >/dev/null 2>&1 || true' EXIT
ws=$work/workspace.yaml
{
  echo "datastores:"
  for c in big medium; do
    printf '  %s: {type: azure_blob, account_name: %s, container_name: %s, endpoint: "%s", credentials: {account_key: {env: ACCOUNT_KEY}}}\n' "$c" "$ACCOUNT" "$c" "$(endpoint "$PORT")"
  done
} >"$ws"
for c in big medium; do
  listed=$("$STAGEHAND" -q datastore -w "$ws" ls "$c" set 2>/dev/null || true)
  if [ -z "$listed" ]; then
    "$STAGEHAND" -q datastore -w "$ws" check "$c" --create-if-not-exists >/dev/null
    "$STAGEHAND" -q datastore -w "$ws" upload "$c" --src-dir "$DATA/$c" --target-path set >/dev/null
  fi
done
cat >"$work/job.yaml" <<'YAML'
name: cache-bench
command: ["sh", "-c", 'cat "$1" > /dev/null && cat "$2"/* > /dev/null', "x", "${{inputs.big}}", "${{inputs.medium}}"]
inputs:
  big: {datastore: big, path: set/1GiB.bin, mode: download}
  medium: {datastore: medium, path: set, mode: download}
YAML

# The peak of `du` over the runs and the cache while $work/sampling exists.
sample_disk() { # OUT
  local peak=0 now
  while [ -e "$work/sampling" ]; do
    now=$({ du -sb "$work/runs" "$work/cache" 2>/dev/null || true; } | awk '{s += $1} END {printf "%.0f\n", s}')
    if [ "$now" -gt "$peak" ]; then peak=$now; fi
    sleep 0.5
  done
  echo "$peak" >"$1"
}

one() { # MODE ID: one run, its wall seconds appended to $work/times
  local mode=$1 id=$2 size=
  [ "$mode" = nocache ] && size=0
  local t0 t1
  t0=$(date +%s.%N)
  STAGEHAND_CACHE_DIR=$work/cache STAGEHAND_CACHE_SIZE=$size ACCOUNT_KEY=$ACCOUNT_KEY \
    "$STAGEHAND" -q run "$work/job.yaml" -w "$ws" --run-dir "$work/runs/$id" \
    --events "$work/events/$id.jsonl" >/dev/null 2>"$work/events/$id.err" </dev/null ||
    echo "warning: run $id failed: $(tail -1 "$work/events/$id.err")" >&2
  t1=$(date +%s.%N)
  echo "$id $(awk "BEGIN { print $t1 - $t0 }")" >>"$work/times"
  [ -n "${KEEP_RUNS:-}" ] || rm -rf "$work/runs/$id"
}

phase() { # MODE KIND N
  local mode=$1 kind=$2 n=$3 i
  rm -rf "$work/runs" "$work/cache" "$work/events" "$work/times"
  mkdir -p "$work/runs" "$work/events"
  sync
  if [ -w /proc/sys/vm/drop_caches ]; then echo 3 >/proc/sys/vm/drop_caches; fi
  touch "$work/sampling"
  sample_disk "$work/peak" &
  local sampler=$!
  if [ "$kind" = sequential ]; then
    for ((i = 1; i <= n; i++)); do one "$mode" "r$i"; done
  else
    local pids=()
    for ((i = 1; i <= n; i++)); do
      one "$mode" "r$i" &
      pids+=($!)
    done
    wait "${pids[@]}"
  fi
  rm -f "$work/sampling"
  wait "$sampler"
  python3 - "$work" "$mode" "$kind" "$n" <<'PY'
import json, statistics, sys, pathlib
work, mode, kind, n = pathlib.Path(sys.argv[1]), sys.argv[2], sys.argv[3], int(sys.argv[4])
times = {l.split()[0]: float(l.split()[1]) for l in (work / "times").read_text().split("\n") if l}
fetched = hits = misses = ok = 0
for f in (work / "events").glob("*.jsonl"):
    for line in f.read_text().splitlines():
        e = json.loads(line)
        if e["event"] == "finished":
            fetched += e["bytes_downloaded"]; hits += e.get("cache_hits", 0); misses += e.get("cache_misses", 0)
            ok += e["exit_code"] == 0
first = times.get("r1", 0.0)
rest = [t for k, t in times.items() if k != "r1"] if kind == "sequential" else list(times.values())
med = statistics.median(rest) if rest else 0.0
peak = int((work / "peak").read_text() or 0)
label = "after the first" if kind == "sequential" else "all, started together"
print(f"| {mode} | {kind} x{n} | {ok}/{n} | {first:.2f} | {med:.2f} | {max(rest or [0]):.2f} ({label}) | {fetched / 2**30:.2f} GiB | {hits}/{misses} | {peak / 2**30:.2f} GiB |")
PY
}

echo "stagehand: $("$STAGEHAND" --version) ($STAGEHAND); runs: sequential $SEQ, concurrent $CONC; run folders $([ -n "${KEEP_RUNS:-}" ] && echo kept || echo removed after each run)"
echo
echo "| mode | phase | exit 0 | first run s | median s | max s | fetched from Azurite | hits/misses | peak disk (runs + cache) |"
echo "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"
for mode in $MODES; do
  phase "$mode" sequential "$SEQ"
  phase "$mode" concurrent "$CONC"
done
rm -rf "$work/runs" "$work/cache"
