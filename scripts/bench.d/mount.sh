#!/usr/bin/env bash
# stagehand's read-only FUSE mount vs rclone mount (--vfs-cache-mode off and full).
#
#   scripts/bench mount                 RUNS=3 by default
#   MOUNT_BENCH_BACKEND=local|azurite   where the data lives (default: local)
#   BENCH_WORK=DIR                      work folder for data, mounts, caches (default: mktemp)
#
# Datasets (made once in $BENCH_WORK, deterministic): big = 1 x 1 GiB, small = 10,000 x
# 4 KiB in d0..d9/e0..e9/f000..f099.bin (the layout of /work/shared/bench).
#
# Measures, each on a fresh mount with the kernel's caches dropped:
#   ttfb   time to the first byte of the 1 GiB file (`head -c1`, no listing before it)
#   seq    a sequential read of the 1 GiB file (`cat > /dev/null`), MB/s
#   small  reading all 10,000 small files (`find | sort | xargs cat`), files/s
# and the peak RSS (VmHWM) of the process serving the mount (the agent; rclone).
# `disk` is the ceiling: the same reads straight from the source folder.
#
# Backends: `local` serves the datasets from a local folder (stagehand's local datastore
# with STAGEHAND_LOCAL_MOUNT=fuse, and rclone's local backend), so it measures the FUSE
# layer, the read-ahead and the cache, not a network. `azurite` (the issue's comparison,
# same emulator for both tools) needs stagehand's Azure Blob store, which is not in
# this build yet: it stops with a message saying so.
set -euo pipefail
cd "$(dirname "$0")/../.."
root=$PWD
runs=${RUNS:-3}
backend=${MOUNT_BENCH_BACKEND:-local}
work=${BENCH_WORK:-$(mktemp -d -t stagehand-bench-mount.XXXXXX)}
mkdir -p "$work"
say() { printf '==> %s\n' "$*" >&2; }
die() { echo "scripts/bench mount: $*" >&2; exit 1; }

case $backend in
local) ;;
azurite)
  "$root/target/release/stagehand" schema workspace 2>/dev/null | grep -q azure_blob ||
    die "backend azurite needs a stagehand that can read azure_blob datastores"
  grep -q 'azure' "$root/agent/src/store/mod.rs" && grep -q 'pub mod azure' "$root/agent/src/store/mod.rs" ||
    die "backend azurite needs the Azure Blob store (agent/src/store/azure.rs), which this build does not have yet; use MOUNT_BENCH_BACKEND=local"
  die "backend azurite: wire the Azure store in here (workspace type azure_blob at the Azurite endpoint, rclone remote by SAS as in /work/shared/bench/lib.sh)"
  ;;
*) die "unknown MOUNT_BENCH_BACKEND=$backend (local or azurite)" ;;
esac

# --- tools -----------------------------------------------------------------------
need=()
command -v rclone >/dev/null || need+=(rclone)
command -v fusermount3 >/dev/null || need+=(fuse3)
if [ ${#need[@]} -gt 0 ]; then
  say "installing ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
say "building stagehand (release)"
cargo build --release -q -p stagehand
bin=$root/target/release/stagehand

# --- data ------------------------------------------------------------------------
data=$work/store/data
if [ ! -f "$work/store/.done" ]; then
  say "making the datasets in $data"
  rm -rf "$work/store"
  mkdir -p "$data/big" "$data/small"
  python3 - "$data" <<'PY'
import os, sys, random
d = sys.argv[1]
r = random.Random(42)
with open(os.path.join(d, "big", "1GiB.bin"), "wb") as f:
    block = r.randbytes(8 << 20)
    for i in range(128):
        f.write(block[i:] + block[:i])
for a in range(10):
    for b in range(10):
        p = os.path.join(d, "small", f"d{a}", f"e{b}")
        os.makedirs(p, exist_ok=True)
        for c in range(100):
            with open(os.path.join(p, f"f{c:03d}.bin"), "wb") as f:
                f.write(r.randbytes(4096))
PY
  touch "$work/store/.done"
fi
big_md5=$(md5sum "$data/big/1GiB.bin" | cut -d' ' -f1)

# --- the reader (one measure on one mount) ---------------------------------------
reader=$work/read.sh
cat >"$reader" <<'SH'
#!/usr/bin/env bash
# read.sh MNT ttfb|seq|small: one measure; prints "RESULT what seconds" (and, under
# stagehand, the agent's peak RSS: the job's parent is the agent).
set -euo pipefail
mnt=$1 what=$2
now() { date +%s.%N; }
t0=$(now)
case $what in
ttfb) head -c1 "$mnt/big/1GiB.bin" >/dev/null ;;
seq) cat "$mnt/big/1GiB.bin" >/dev/null ;;
small) (cd "$mnt/small" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 cat >/dev/null) ;;
md5) md5sum "$mnt/big/1GiB.bin" | cut -d' ' -f1 ;;
esac
t1=$(now)
echo "RESULT $what $(awk -v a="$t0" -v b="$t1" 'BEGIN { printf "%.4f", b - a }')"
if [ -n "${STAGEHAND_RUN_ID:-}" ]; then
  echo "RSS $(awk '/VmHWM/ {print $2}' "/proc/$PPID/status")"
fi
SH
chmod +x "$reader"

drop_caches() {
  sync
  if [ -w /proc/sys/vm/drop_caches ]; then echo 3 >/proc/sys/vm/drop_caches; else DROPPED=no; fi
}
DROPPED=yes

# --- one measure per tool ----------------------------------------------------------
ws=$work/workspace.yaml
printf 'default_datastore: local\ndatastores:\n  local: {type: local, root: %s}\n' "$work/store" >"$ws"

# Prints "seconds rss_kib".
measure_stagehand() { # WHAT
  local job=$work/job-$1.yaml out
  printf 'name: bench-mount\ncommand: ["bash", "%s", "$AZUREML_DATAREFERENCE_data", "%s"]\ninputs:\n  data: {path: data, mode: mount}\n' "$reader" "$1" >"$job"
  drop_caches
  out=$(STAGEHAND_LOCAL_MOUNT=fuse STAGEHAND_RUNS_DIR=$work/runs "$bin" -q run "$job" --workspace "$ws")
  echo "$(echo "$out" | awk '/^RESULT/ {print $3}') $(echo "$out" | awk '/^RSS/ {print $2}')"
}

measure_rclone() { # MODE WHAT
  local mnt cache pid out rss
  mnt=$(mktemp -d -p "$work" mnt.XXXXXX)
  cache=$(mktemp -d -p "$work" vfscache.XXXXXX)
  RCLONE_CONFIG=/dev/null rclone mount "$data" "$mnt" --read-only --vfs-cache-mode "$1" --cache-dir "$cache" 2>>"$work/rclone.log" &
  pid=$!
  for _ in $(seq 300); do mountpoint -q "$mnt" && break; sleep 0.05; done
  mountpoint -q "$mnt" || die "rclone mount did not come up (see $work/rclone.log)"
  drop_caches
  out=$(bash "$reader" "$mnt" "$2")
  rss=$(awk '/VmHWM/ {print $2}' "/proc/$pid/status")
  fusermount3 -u "$mnt"
  wait "$pid" || true
  rmdir "$mnt"
  rm -rf "$cache"
  echo "$(echo "$out" | awk '/^RESULT/ {print $3}') $rss"
}

measure_disk() { # WHAT
  drop_caches
  echo "$(bash "$reader" "$data" "$1" | awk '/^RESULT/ {print $3}') -"
}

measure() { # TOOL WHAT
  case $1 in
  stagehand) measure_stagehand "$2" ;;
  rclone-off) measure_rclone off "$2" ;;
  rclone-full) measure_rclone full "$2" ;;
  disk) measure_disk "$2" ;;
  esac
}

median() { sort -g | awk '{a[NR]=$1} END { if (NR == 0) print "-"; else print a[int((NR + 1) / 2)] }'; }

# --- check, then measure ---------------------------------------------------------
say "checking that stagehand's mount reads the 1 GiB file byte-exactly"
job=$work/job-md5.yaml
printf 'name: bench-mount\ncommand: ["bash", "%s", "$AZUREML_DATAREFERENCE_data", "md5"]\ninputs:\n  data: {path: data, mode: mount}\n' "$reader" >"$job"
got=$(STAGEHAND_LOCAL_MOUNT=fuse STAGEHAND_RUNS_DIR=$work/runs "$bin" -q run "$job" --workspace "$ws" | head -1)
[ "$got" = "$big_md5" ] || die "md5 through the mount is $got, expected $big_md5"

results=$work/results.txt
: >"$results"
tools=${MOUNT_BENCH_TOOLS:-disk stagehand rclone-off rclone-full}
for what in ttfb seq small; do
  for tool in $tools; do
    for run in $(seq "$runs"); do
      r=$(measure "$tool" "$what")
      say "$tool $what run $run: ${r% *} s (peak RSS ${r#* } KiB)"
      echo "$tool $what $r" >>"$results"
    done
  done
done

# --- table -----------------------------------------------------------------------
echo
echo "backend $backend, median of $runs runs, caches dropped: $DROPPED ($(nproc) cores, $(uname -r))"
echo
printf '| %-12s | %-14s | %-16s | %-18s | %-14s |\n' tool "first byte" "1 GiB sequential" "10,000 x 4 KiB" "peak RSS (seq)"
printf '| %-12s | %-14s | %-16s | %-18s | %-14s |\n' --- --- --- --- ---
for tool in $tools; do
  t=$(awk -v t="$tool" '$1 == t && $2 == "ttfb" {print $3}' "$results" | median)
  s=$(awk -v t="$tool" '$1 == t && $2 == "seq" {print $3}' "$results" | median)
  m=$(awk -v t="$tool" '$1 == t && $2 == "small" {print $3}' "$results" | median)
  rss=$(awk -v t="$tool" '$1 == t && $2 == "seq" && $4 != "-" {print $4}' "$results" | median)
  ttfb_ms=$(awk -v x="$t" 'BEGIN { printf "%.1f ms", x * 1000 }')
  seq_rate=$(awk -v x="$s" 'BEGIN { printf "%.2f s, %.0f MB/s", x, 1073.741824 / x }')
  small_rate=$(awk -v x="$m" 'BEGIN { printf "%.2f s, %.0f/s", x, 10000 / x }')
  rss_mib=$(awk -v x="$rss" 'BEGIN { if (x == "-") print "-"; else printf "%.0f MiB", x / 1024 }')
  printf '| %-12s | %-14s | %-16s | %-18s | %-14s |\n' "$tool" "$ttfb_ms" "$seq_rate" "$small_rate" "$rss_mib"
done
echo
echo "raw results: $results"
